"""Grade a folder of submissions: one `grade` subprocess per submission, several at once, on this machine or
on a Dask cluster (`executors`), resumable, with per-submission results, a CSV of per-component scores joined to
the export's names and e-mails, and a histogram of totals.

Layout: one sub-folder or one `.ipynb`/`.py` file per student in FOLDER. That is what Gradescope's
"Export Submissions" gives once unzipped (a folder holding `submission_metadata.yml` and one
`submission_<id>/` folder per submission); the export's single top folder may be given instead.

Each submission is graded by `python -m autograder grade` in its own process, in a private temporary folder of
the node, so a submission that crashes, hangs or exhausts the grader costs only its own row. What a grade left
behind comes back to this process, which records it in
OUT/<id>/batch.json next to OUT/<id>/results.json; a later run skips a submission whose record says it
was graded, with the same content, profile and suite, and whose results file is still the one recorded.
Submissions that could not be graded are retried on every run.

Scores come from what each grade process reports on a pipe of its own (`PS7_RESULTS_FD`, written by the
results plugin when the grade ends; the worker never holds that descriptor), never from files in folders
student code might write to: results.json is rewritten from the report, and its digest is recorded. Without
a separate user for student code (the grader is not root) a batch refuses to run unless told
`unsafe_same_user`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from autograder.assignment.source import REPO_ROOT
from autograder.delivery.executors import (
    EXECUTORS,
    GRADER_ERROR,
    OK,
    DaskExecutor,
    ExecutorError,
    GradeTask,
    LocalExecutor,
    TaskResult,
    detect_devices,
    last_line,
    pack_submission,
)
from autograder.ingest.reader import SUBMISSION_SUFFIXES
from autograder.results import numbers
from autograder.worker.isolation import same_user_refusal

METADATA_NAME = "submission_metadata.yml"
RECORD_NAME = "batch.json"
RESULTS_NAME = "results.json"
LOG_NAME = "grade.log"
# How both the grader's fallback results and run_autograder's begin: the grader broke, not the submission.
_GRADER_FAILED = "The autograder failed"
OTHER = "other"  # the column of tests whose name and number carry no component
_BINS = 20
BAR_COLOR = "#4272c4"  # the histogram's bars
_SUBMISSION_NUMBER = re.compile(r"submission_(\d+)")
_DEADLINE_REACHED = "the grade's time limit of"  # worker.deadline's message for a test the deadline stopped


class BatchError(Exception):
    """The batch cannot start (no submissions, clashing ids, profile not preparable)."""


@dataclass(frozen=True)
class BatchSubmission:
    """One student's work; `id` names its output folder and its CSV row."""

    id: str
    path: Path  # what `grade` is given: the student's file, or their folder


@dataclass(frozen=True)
class Outcome:
    """What grading one submission gave: its results when graded, the reason when the grader failed."""

    submission: BatchSubmission
    status: str  # OK or GRADER_ERROR
    reason: str = ""
    results: dict[str, Any] | None = None
    skipped: bool = False  # graded by an earlier run


@dataclass(frozen=True)
class Options:
    """What every `grade` of the batch is run with (a graded submission is reused only under the same)."""

    profile: str
    suite: str
    timeout: float
    force: bool = False
    unsafe_same_user: bool = False  # grade even when student code would run as this user (see isolation)


def export_root(folder: Path) -> Path:
    """The folder that holds the submissions: `folder`, or the single top folder of an unzipped export."""
    children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    folders = [child for child in children if child.is_dir()]
    if not (folder / METADATA_NAME).exists() and len(folders) == 1 and (folders[0] / METADATA_NAME).exists():
        return folders[0]
    return folder


def find_submissions(folder: Path, exclude: Path | None = None) -> list[BatchSubmission]:
    """The submissions in `folder`, by id (a sub-folder's name, or a file's name without its suffix)."""
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder")
    folder = export_root(folder)
    children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    skip = exclude.resolve() if exclude is not None else None
    found: dict[str, list[Path]] = {}
    for child in sorted(children):
        if child.resolve() == skip:
            continue
        if child.is_dir() or (child.is_file() and child.suffix in SUBMISSION_SUFFIXES):
            found.setdefault(child.name if child.is_dir() else child.stem, []).append(child)
    clashes = {name: paths for name, paths in found.items() if len(paths) > 1}
    if clashes:
        listed = "; ".join(f"{name}: {', '.join(str(path) for path in paths)}" for name, paths in clashes.items())
        raise BatchError(f"several submissions share an id ({listed}); keep one per student")
    if not found:
        raise BatchError(f"{folder} holds no submission (a sub-folder or an .ipynb/.py file per student)")
    return [BatchSubmission(name, paths[0]) for name, paths in sorted(found.items())]


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


def content_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's file names and contents: a changed submission is regraded."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for item in sorted(item for item in path.rglob("*") if item.is_file()):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(item.read_bytes()).digest())
    return digest.hexdigest()


def read_results(path: Path) -> dict[str, Any] | None:
    """The results file as a dict when it is usable (Gradescope's shape, finite scores), else None."""
    try:
        return parse_results(path.read_bytes())
    except OSError:
        return None


def parse_results(text: bytes) -> dict[str, Any] | None:
    """A results document as a dict when it is usable (Gradescope's shape, finite scores), else None."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
        return None
    for test in document["tests"]:
        if not isinstance(test, dict) or not all(_is_number(test.get(key)) for key in ("score", "max_score")):
            return None
    if "score" in document and not _is_number(document["score"]):
        return None
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def total_score(results: dict[str, Any]) -> float:
    """The top-level score when given (Gradescope uses it), else the sum of the tests' scores."""
    if "score" in results:
        return float(results["score"])
    return sum(float(test["score"]) for test in results["tests"])


def component_of(test: dict[str, Any]) -> str:
    """The component "7.1.1" of a test numbered "7.1.1.2" or named "7.1.1 Encoder: ..."; else OTHER."""
    for text in (str(test.get("number") or ""), str(test.get("name") or "")):
        component = numbers.component_of(text)
        if component:
            return component
    return OTHER


def component_scores(results: dict[str, Any]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for test in results["tests"]:
        component = component_of(test)
        scores[component] = scores.get(component, 0.0) + float(test["score"])
    return scores


def _sort_key(component: str) -> tuple[int, ...]:
    return tuple(int(part) for part in component.split(".")) if component != OTHER else (10**9,)


class _Grader:
    """Decides what to grade (resume), turns submissions into tasks, and records each task's result in OUT."""

    def __init__(self, out: Path, options: Options, jobs: int) -> None:
        self.out = out
        self.options = options
        self.python = os.environ.get("PS7_PYTHON") or sys.executable
        self.env = dict(os.environ)
        # Torch would start one thread per core in every job; share the cores out instead.
        self.env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
        self.digests: dict[str, str] = {}

    def prepare(self) -> None:
        """Prepare the profile once, before the jobs start (several `grade`s would all prepare it at once)."""
        argv = [self.python, "-m", "autograder", "prepare", "--profile", self.options.profile]
        if subprocess.run(argv, cwd=REPO_ROOT, env=self.env, check=False).returncode != 0:
            raise BatchError(f"preparing profile {self.options.profile!r} failed (see above); nothing was graded")

    def done_before(self, submission: BatchSubmission, digest: str) -> Outcome | None:
        folder = self.out / submission.id
        try:
            record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        wanted = {"status": OK, "digest": digest, "profile": self.options.profile, "suite": self.options.suite}
        if not isinstance(record, dict) or any(record.get(key) != value for key, value in wanted.items()):
            return None
        try:
            text = (folder / RESULTS_NAME).read_bytes()
        except OSError:
            return None
        results = parse_results(text)
        if results is None or hashlib.sha256(text).hexdigest() != record.get("results_sha256"):
            return None  # changed since the batch wrote it: regrade rather than trust it
        return Outcome(submission, OK, results=results, skipped=True)

    def task(self, submission: BatchSubmission, threads: int | None, networked: bool) -> GradeTask | Outcome:
        """The task that grades `submission`, or its earlier outcome when an earlier run graded it already."""
        digest = content_digest(submission.path)
        self.digests[submission.id] = digest
        if not self.options.force:
            earlier = self.done_before(submission, digest)
            if earlier is not None:
                return earlier
        folder = self.out / submission.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD_NAME).unlink(missing_ok=True)
        (folder / RESULTS_NAME).unlink(missing_ok=True)
        return GradeTask(
            id=submission.id,
            name=submission.path.name,
            files=pack_submission(submission.path),
            profile=self.options.profile,
            suite=self.options.suite,
            timeout=self.options.timeout,
            unsafe_same_user=self.options.unsafe_same_user,
            threads=threads,
            networked=networked,
        )

    def record(self, submission: BatchSubmission, result: TaskResult) -> Outcome:
        """Write what a node returned into OUT/<id>/: the reported results, the log and the batch's record."""
        folder = self.out / submission.id
        folder.mkdir(parents=True, exist_ok=True)
        _replace(folder / LOG_NAME, result.log)
        status, reason = result.status, result.reason
        results = parse_results(result.reported) if status == OK else None
        if status == OK:
            if results is None:
                status, reason = GRADER_ERROR, f"the grader reported no valid results (see {folder / LOG_NAME})"
            elif str(results.get("output", "")).startswith(_GRADER_FAILED) or not results["tests"]:
                status, reason = GRADER_ERROR, last_line(str(results.get("output", "")))
        text = result.reported if status == OK else b""
        if status == OK:  # whatever is in OUT was not written by this batch; the report is the truth
            _replace(folder / RESULTS_NAME, text)
        else:
            (folder / RESULTS_NAME).unlink(missing_ok=True)
        record = {
            "submission": str(submission.path),
            "digest": self.digests.get(submission.id) or content_digest(submission.path),
            "profile": self.options.profile,
            "suite": self.options.suite,
            "status": status,
            "reason": reason,
            "seconds": result.seconds,
            "host": result.host,
            "device": result.device,
            "results_sha256": hashlib.sha256(text).hexdigest() if status == OK else None,
        }
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return Outcome(submission, status, reason, results if status == OK else None)


def _replace(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, replacing whatever is there (a link included, not followed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
    os.replace(temporary, path)


def run_batch(
    folder: Path,
    out: Path,
    options: Options,
    *,
    jobs: int = 1,
    csv_path: Path | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    devices: Sequence[str] | None = None,
) -> list[Outcome]:
    """Grade every submission in `folder` into `out` on `executor` (see `executors`), then write the CSV
    (default OUT/scores.csv) and the histogram next to it. `devices`: the GPUs to hand out, one grade per
    device at a time (None: those this machine shows)."""
    if jobs < 1:
        raise BatchError(f"--jobs must be at least 1, got {jobs}")
    if executor not in EXECUTORS:
        raise BatchError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise BatchError(f"--scheduler is for --executor dask, not {executor}")
    refusal = None if options.unsafe_same_user else same_user_refusal("batch")
    if refusal is not None:
        raise BatchError(refusal)
    submissions = find_submissions(folder, exclude=out)
    roster = read_roster(folder)
    devices = list(detect_devices() if devices is None else devices)
    grader = _Grader(out, options, jobs)
    grader.prepare()
    threads = None if executor == "slurm" or scheduler else max(1, (os.cpu_count() or 1) // jobs)
    by_id = {submission.id: submission for submission in submissions}
    outcomes: list[Outcome] = []
    with tqdm(total=len(submissions), unit="submission", desc="grading") as progress:

        def done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if outcome.status != OK:
                progress.write(f"{outcome.submission.id}: {outcome.status}: {outcome.reason}")
            progress.update()

        tasks: list[GradeTask] = []
        for submission in submissions:
            task = grader.task(submission, threads, networked=executor != "local")
            if isinstance(task, Outcome):
                done(task)
            else:
                tasks.append(task)
        engine = (
            LocalExecutor(jobs, devices)
            if executor == "local"
            else DaskExecutor(executor, jobs, scheduler=scheduler, devices=devices)
        )
        try:
            engine.run(tasks, lambda task, result: done(grader.record(by_id[task.id], result)))
        except ExecutorError as error:
            raise BatchError(str(error)) from error
    outcomes.sort(key=lambda outcome: outcome.submission.id)
    csv_path = csv_path or out / "scores.csv"
    write_csv(outcomes, csv_path, roster)
    graded = [outcome.results for outcome in outcomes if outcome.results is not None]
    top = max((sum(float(test["max_score"]) for test in results["tests"]) for results in graded), default=None)
    write_histogram([total_score(results) for results in graded], histogram_path(csv_path), top=top)
    return outcomes


def batch_command(
    folder: Path,
    options: Options,
    *,
    out: Path | None = None,
    csv_path: Path | None = None,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    devices: Sequence[str] | None = None,
) -> int:
    """`python -m autograder batch`: grade, print a summary; 1 when some submission could not be graded."""
    folder = folder.resolve()
    out = out or folder.with_name(f"{folder.name}-graded")
    csv_path = csv_path or out / "scores.csv"
    outcomes = run_batch(
        folder, out, options, jobs=jobs, csv_path=csv_path, executor=executor, scheduler=scheduler, devices=devices
    )
    errors = [outcome.submission.id for outcome in outcomes if outcome.status == GRADER_ERROR]
    skipped = sum(outcome.skipped for outcome in outcomes)
    print(f"{len(outcomes)} submissions: {skipped} graded by an earlier run, {len(errors)} grader errors")
    print(f"results in {out}{os.sep}<id>{os.sep}, scores in {csv_path}, histogram in {histogram_path(csv_path)}")
    if errors:
        print(f"could not grade {', '.join(errors)}; run again to retry them", file=sys.stderr)
    return 1 if errors else 0


def histogram_path(csv_path: Path) -> Path:
    return csv_path.with_name(f"{csv_path.stem}-histogram.png")


def _number(value: float) -> str:
    return format(round(value, 6), "g")


def accuracies(results: dict[str, Any]) -> dict[str, float]:
    """The test accuracies the grade measured (Method I, II, III, CLIP probe), from its tests' `extra_data`."""
    found: dict[str, float] = {}
    for test in results["tests"]:
        extra = test.get("extra_data")
        measured = extra.get("accuracies") if isinstance(extra, dict) else None
        if isinstance(measured, dict):
            found.update({str(key): float(value) for key, value in measured.items() if _is_number(value)})
    return found


def deadline_note(results: dict[str, Any] | None) -> str:
    """For the CSV's reason: how many tests the grade's deadline cut short ("" when none), since a TA must tell
    a slow or overloaded machine (regrade) from a low score."""
    if results is None:
        return ""
    cut = sum(_DEADLINE_REACHED in str(test.get("output", "")) for test in results["tests"])
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
                maximum = sum(float(test["max_score"]) for test in outcome.results["tests"])
                measured = accuracies(outcome.results)
                row += [_number(total_score(outcome.results)), _number(maximum)]
                row += [_number(scores.get(component, 0.0)) for component in components]
                row += [_number(measured[measure]) if measure in measured else "" for measure in measures]
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
        axes.set_xlabel(f"total score (out of {_number(top)})", fontsize=15)
        axes.set_ylabel("submissions", fontsize=15)
        axes.set_xlim(0, top)
        axes.set_xticks([top * tick / 10 for tick in range(11)], [_number(top * tick / 10) for tick in range(11)])
        axes.set_ylim(0, max(counts + [1]) * 1.15)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=13)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
