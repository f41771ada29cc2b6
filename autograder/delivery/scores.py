"""What a batch reads from a Gradescope export and from its grades, and what it writes from them: the roster of
names and e-mails (`submission_metadata.yml`), the usable results documents (read as `Results`, which also gives
each grade's total and maximum), each grade's per-component scores and accuracies, the CSV and the histogram of
totals. `batch` grades; this module only reads and reports."""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autograder.results import Results, TestResult, numbers

if TYPE_CHECKING:
    from autograder.delivery.batch import Outcome

METADATA_NAME = "submission_metadata.yml"
OTHER = "other"  # the column of tests whose name and number carry no component
_BINS = 20
BAR_COLOR = "#4272c4"  # the histogram's bars
_SUBMISSION_NUMBER = re.compile(r"submission_(\d+)")
_DEADLINE_REACHED = "the grade's time limit of"  # worker.deadline's message for a test the deadline stopped


def export_root(folder: Path) -> Path:
    """The folder that holds the submissions: `folder`, or the single top folder of an unzipped export."""
    children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    folders = [child for child in children if child.is_dir()]
    if not (folder / METADATA_NAME).exists() and len(folders) == 1 and (folders[0] / METADATA_NAME).exists():
        return folders[0]
    return folder


@dataclass(frozen=True)
class Submitter:
    """One student of a submission, as Gradescope's export names them."""

    name: str
    email: str
    sid: str


class _MetadataLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading any tag Gradescope's (Ruby) export writes, such as
    `!ruby/object:BigDecimal`, as the plain value under it: nothing is constructed from a tag."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_MetadataLoader.add_multi_constructor("!", _untagged)
_MetadataLoader.add_multi_constructor("tag:yaml.org,2002:ruby", _untagged)


def _field(mapping: object, name: str) -> Any:
    """`mapping[":name"]` (Gradescope writes Ruby symbols as keys) or `mapping["name"]`."""
    if not isinstance(mapping, dict):
        return None
    return mapping.get(f":{name}", mapping.get(name))


def read_roster(folder: Path) -> dict[str, tuple[Submitter, ...]]:
    """Who handed in each submission, by submission id (`submission_<n>`), from the export's
    `submission_metadata.yml`: {} when there is none; a file that cannot be read is reported on stderr and
    skipped (grading does not need it)."""
    path = export_root(folder) / METADATA_NAME
    if not path.is_file():
        return {}
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_MetadataLoader)  # noqa: S506 - safe subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        print(f"warning: could not read {path} ({error}); the CSV has no names or e-mails", file=sys.stderr)
        return {}
    if not isinstance(document, dict):
        print(f"warning: {path} is not a mapping of submissions; the CSV has no names or e-mails", file=sys.stderr)
        return {}
    roster: dict[str, tuple[Submitter, ...]] = {}
    for key, entry in document.items():
        people = _field(entry, "submitters")
        if not isinstance(people, list):
            continue
        roster[str(key).lstrip(":")] = tuple(
            Submitter(*(str(_field(person, name) or "") for name in ("name", "email", "sid")))
            for person in people
            if isinstance(person, dict)
        )
    return roster


def submission_number(submission_id: str) -> str:
    """Gradescope's submission id: 123 of `submission_123`; "" for a folder not named by Gradescope."""
    match = _SUBMISSION_NUMBER.fullmatch(submission_id)
    return match.group(1) if match else ""


def usable_results(text: bytes) -> Results | None:
    """A grade's results document when the batch can score it, else None: JSON that `Results.from_dict` reads
    (Gradescope's shape, finite numeric scores), every test stating its score and max_score (Gradescope lets
    both default; a grade's results never do, so a document leaving one out is not taken for a grade)."""
    try:
        document = json.loads(text)
        return Results.from_dict(document) if _states_every_score(document) else None
    except ValueError:  # not JSON, or not Gradescope's shape
        return None


def _states_every_score(document: object) -> bool:
    tests = document.get("tests") if isinstance(document, dict) else None
    return isinstance(tests, list) and all(
        "score" in test and "max_score" in test for test in tests if isinstance(test, dict)
    )


def component_of(test: TestResult) -> str:
    """The component "7.1.1" of a test numbered "7.1.1.2" or named "7.1.1 Encoder: ..."; else OTHER."""
    for text in (test.number or "", test.name):
        component = numbers.component_of(text)
        if component:
            return component
    return OTHER


def component_scores(results: Results) -> dict[str, float]:
    """The points each component's tests scored, for the CSV's component columns."""
    scores: dict[str, float] = {}
    for test in results.tests:
        component = component_of(test)
        scores[component] = scores.get(component, 0.0) + test.score
    return scores


def _sort_key(component: str) -> tuple[int, ...]:
    return tuple(int(part) for part in component.split(".")) if component != OTHER else (10**9,)


def histogram_path(csv_path: Path) -> Path:
    return csv_path.with_name(f"{csv_path.stem}-histogram.png")


def _formatted(value: float) -> str:
    return format(round(value, 6), "g")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def accuracies(results: Results) -> dict[str, float]:
    """The test accuracies the grade measured (Method I, II, III, CLIP probe), from its tests' `extra_data`."""
    found: dict[str, float] = {}
    for test in results.tests:
        extra = test.extra_data
        measured = extra.get("accuracies") if isinstance(extra, dict) else None
        if isinstance(measured, dict):
            found.update({str(key): float(value) for key, value in measured.items() if _is_number(value)})
    return found


def deadline_note(results: Results | None) -> str:
    """For the CSV's reason: how many tests the grade's deadline cut short ("" when none), since a TA must tell
    a slow or overloaded machine (regrade) from a low score."""
    if results is None:
        return ""
    cut = sum(_DEADLINE_REACHED in test.output for test in results.tests)
    if not cut:
        return ""
    return f"{cut} test(s) did not finish: the grade reached its time limit (a hanging submission, or a busy machine)"


def write_csv(outcomes: Sequence[Outcome], path: Path, roster: Mapping[str, Sequence[Submitter]] | None = None) -> None:
    """One row per submission: id, Gradescope's submission id, the students' names, e-mails and SIDs (group
    members joined by "; "), status, total, max, one column per component, one per accuracy the grade
    measured, and the reason of an error."""
    roster = roster or {}
    graded = [o.results for o in outcomes if o.results is not None]
    components = sorted({component for results in graded for component in component_scores(results)}, key=_sort_key)
    measures = list(dict.fromkeys(measure for results in graded for measure in accuracies(results)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        header = ["id", "submission_id", "names", "emails", "sids", "status", "total", "max", *components]
        writer.writerow([*header, *(f"accuracy: {measure}" for measure in measures), "reason"])
        for outcome in outcomes:
            people = roster.get(outcome.submission.id, ())
            row = [outcome.submission.id, submission_number(outcome.submission.id)]
            row += ["; ".join(getattr(person, key) for person in people) for key in ("name", "email", "sid")]
            row += [outcome.status]
            if outcome.results is None:
                row += ["", "", *([""] * (len(components) + len(measures)))]
            else:
                scores = component_scores(outcome.results)
                measured = accuracies(outcome.results)
                row += [_formatted(outcome.results.total_score), _formatted(outcome.results.max_score)]
                row += [_formatted(scores.get(component, 0.0)) for component in components]
                row += [_formatted(measured[measure]) if measure in measured else "" for measure in measures]
            writer.writerow([*row, outcome.reason or deadline_note(outcome.results)])


def write_histogram(totals: Iterable[float], path: Path, *, top: float | None = None) -> None:
    """A PNG bar chart of the totals (bins of half a point up to `top`, the full marks; default: the highest
    total, at least 1) with the count on every bar and the median marked, large enough to read at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    values = list(totals)
    top = top or max([1.0, *values])
    edges = [top * index / _BINS for index in range(_BINS + 1)]
    counts = [0] * _BINS
    for value in values:
        counts[min(_BINS - 1, max(0, int(value / top * _BINS)))] += 1
    figure, axes = pyplot.subplots(figsize=(10, 5.5), dpi=100, layout="constrained")
    try:
        width = top / _BINS
        bars = axes.bar(edges[:-1], counts, width=width * 0.92, align="edge", color=BAR_COLOR, edgecolor="#1e3c78")
        axes.bar_label(bars, labels=[str(count) if count else "" for count in counts], fontsize=14, padding=3)
        if values:
            median = statistics.median(values)
            axes.axvline(median, color="#c0392b", linestyle="--", linewidth=2, label=f"median {median:.2f}")
            axes.legend(fontsize=13, loc="upper left")
        mean = f", mean {statistics.fmean(values):.2f}" if values else ""
        axes.set_title(f"Total scores of {len(values)} graded submissions{mean}", fontsize=18)
        axes.set_xlabel(f"total score (out of {_formatted(top)})", fontsize=15)
        axes.set_ylabel("submissions", fontsize=15)
        axes.set_xlim(0, top)
        axes.set_xticks([top * tick / 10 for tick in range(11)], [_formatted(top * tick / 10) for tick in range(11)])
        axes.set_ylim(0, max(counts + [1]) * 1.15)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=13)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
