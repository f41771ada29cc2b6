"""The corpus of mutants and variants: the reference notebook with text replacements, graded for real.

A mutant is the reference with one realistic bug; it must lose points in its own component only, in the
tests it names. A variant is a correct solution in another style; it must score full marks. Both are
built from the committed reference notebook, so they follow it when the assignment changes (a
replacement whose text is no longer found fails loudly instead of silently testing the reference).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading import grade
from autograder.grading.grade import SUITE_DIR
from autograder.results.gradescope import SCORE_DIGITS
from autograder.results.numbers import component_of


@dataclass(frozen=True)
class SuiteTest:
    """What a grading suite's markers declare about one test."""

    number: str
    points: float
    training: bool


class _MarkerReader:
    """Reads the markers of every collected suite test (pytest's own collection, not a second parser)."""

    def __init__(self) -> None:
        self.tests: list[SuiteTest] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            number = item.get_closest_marker("number").args[0]
            points = float(item.get_closest_marker("points").args[0])
            self.tests.append(SuiteTest(number, points, item.get_closest_marker("training") is not None))


@functools.cache
def suite_tests() -> tuple[SuiteTest, ...]:
    """Every test of the grading suites (public and hidden), as their markers declare it: the one place points
    and training-ness are written, which the corpus reads instead of restating them."""
    reader = _MarkerReader()
    args = [str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR), "--collect-only", "-q"]
    status = pytest.main([*args, "-p", "no:cacheprovider", "--import-mode=importlib"], plugins=[reader])
    if status != 0 or not reader.tests:
        raise RuntimeError(f"collecting the grading suites failed (pytest exit status {status})")
    return tuple(reader.tests)


def component_points() -> dict[str, float]:
    """Each component's points: the sum of its tests' `points` markers."""
    totals: dict[str, float] = {}
    for test in suite_tests():
        component = component_of(test.number)
        totals[component] = round(totals.get(component, 0.0) + test.points, SCORE_DIGITS)
    return totals


def training_tests() -> dict[str, list[str]]:
    """The numbers of the tests marked `training`, by component."""
    found: dict[str, list[str]] = {}
    for test in suite_tests():
        if test.training:
            found.setdefault(component_of(test.number), []).append(test.number)
    return {component: sorted(numbers) for component, numbers in found.items()}


@dataclass(frozen=True)
class Mutant:
    """`replacements`: (old, new) pairs, each `old` found exactly once in the reference's code cells;
    `failing`: the test numbers that must fail; `breaks_learning`: the bug shows only in training tests;
    `only_these`: no other test of its component may fail (a bug that must cost exactly those points);
    `reasons`: for some of `failing`, a phrase its feedback must hold (the check that caught it)."""

    name: str
    component: str
    replacements: list[tuple[str, str]]
    failing: list[str]
    breaks_learning: bool = False
    only_these: bool = False
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """A correct solution written differently; `trains`: the component whose training code differs from the
    reference's, whose training tests its grade then includes."""

    name: str
    replacements: list[tuple[str, str]]
    trains: str | None = None


def build_notebook(replacements: list[tuple[str, str]], path: Path) -> Path:
    """The reference notebook with each replacement applied to the one code cell holding its old text."""
    nbformat.write(_replaced(replacements), path)
    return path


def _replaced(replacements: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = nbformat.read(REPO_ROOT / REFERENCE_NOTEBOOK, as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type in ("code", "markdown")]
    for old, new in replacements:
        holders = [cell for cell in cells if old in cell.source]
        found = sum(cell.source.count(old) for cell in holders)
        if found != 1:
            raise AssertionError(f"replacement text found {found} times in the reference (must be once): {old!r}")
        holders[0].source = holders[0].source.replace(old, new)
    return notebook


def bundles(mutants: list[Mutant]) -> list[tuple[Mutant, ...]]:
    """The mutants whose bugs show without training, put together a few at a time: at most one per component,
    and only mutants whose replacements still apply beside each other. Component isolation says a bundle's
    grade costs each of them points in its own component exactly as its own grade would, so each bundle is
    graded once (`check_mutant`) instead of once per mutant."""
    found: list[list[Mutant]] = []
    for mutant in (mutant for mutant in mutants if not mutant.breaks_learning):
        for bundle in found:
            if all(other.component != mutant.component for other in bundle) and _apply_together([*bundle, mutant]):
                bundle.append(mutant)
                break
        else:
            found.append([mutant])
    return [tuple(bundle) for bundle in found]


def _apply_together(mutants: list[Mutant]) -> bool:
    try:
        _replaced([replacement for mutant in mutants for replacement in mutant.replacements])
    except AssertionError:
        return False
    return True


def graded(path: Path, results: Path, **options: object) -> dict:
    """Grade `path` for real and return the Gradescope results document."""
    grade(path, results, **options)
    return json.loads(results.read_text())


def scores_by_component(document: dict) -> dict[str, tuple[float, float]]:
    totals: dict[str, list[float]] = {}
    for test in document["tests"]:
        entry = totals.setdefault(component_of(test["number"]), [0.0, 0.0])
        entry[0] += test["score"]
        entry[1] += test["max_score"]
    # Rounded as the results file rounds its total: 0.1 + 0.2 + ... of test weights is not exactly 1.0.
    return {
        component: (round(score, SCORE_DIGITS), round(maximum, SCORE_DIGITS))
        for component, (score, maximum) in totals.items()
    }


def failed_numbers(document: dict) -> set[str]:
    return {test["number"] for test in document["tests"] if test["score"] < test["max_score"]}


def explain(document: dict) -> str:
    """The failing tests and their messages, for an assertion that needs them."""
    lines = [
        f"{test['number']} {test['score']}/{test['max_score']} {test['output'][:300]!r}"
        for test in document["tests"]
        if test["score"] < test["max_score"]
    ]
    return "\n".join(lines) or "no test failed"


def check_mutant(mutant: Mutant, folder: Path, family: list[Mutant]) -> None:
    """Grade the mutant (within its bundle of `family`, see `bundles`, when its bug shows without training): the
    other components keep full marks (those of the bundle's other mutants are theirs to check); its own loses
    points, in every test it names. The grade leaves out the training tests except its component's when its
    bug shows only in training."""
    if mutant.breaks_learning:
        notebook = build_notebook(mutant.replacements, folder / "mutant.ipynb")
        document = graded(notebook, folder / "results.json", suite="all", training=mutant.component)
        others: dict[str, str] = {}
    else:
        [bundle] = [bundle for bundle in bundles(family) if mutant in bundle]
        document = _bundle_grade(tuple(other.name for other in bundle), _bundle_replacements(bundle))
        others = {other.component: other.name for other in bundle if other is not mutant}
    scores = scores_by_component(document)
    context = f" (graded with {', '.join(others.values())})" if others else ""
    for component, (score, maximum) in scores.items():
        if component != mutant.component and component not in others:
            assert score == maximum, f"{mutant.name}{context} cost points in {component}:\n{explain(document)}"
    ran = {test["number"] for test in document["tests"]}
    assert set(mutant.failing) <= ran, f"{mutant.name} names tests that did not run: {set(mutant.failing) - ran}"
    missed = set(mutant.failing) - failed_numbers(document)
    assert not missed, f"{mutant.name}{context}: expected {sorted(missed)} to fail:\n{explain(document)}"
    outputs = {test["number"]: test["output"] for test in document["tests"]}
    for number, reason in mutant.reasons.items():
        assert reason in outputs[number], f"{mutant.name}: expected {reason!r} in {number}:\n{explain(document)}"
    if mutant.only_these:
        extra = {number for number in failed_numbers(document) if number.startswith(mutant.component + ".")}
        extra -= set(mutant.failing)
        assert not extra, f"{mutant.name}{context} also cost {sorted(extra)}:\n{explain(document)}"
    score, maximum = scores[mutant.component]
    assert score < component_points()[mutant.component] and score < maximum, f"{mutant.name} was not caught"


def _bundle_replacements(bundle: tuple[Mutant, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(replacement for mutant in bundle for replacement in mutant.replacements)


@functools.cache
def _bundle_grade(names: tuple[str, ...], replacements: tuple[tuple[str, str], ...]) -> dict:
    """One grade per bundle per test process (the bundle's mutants are its tests, run one after another)."""
    folder = Path(tempfile.mkdtemp(prefix="ps7-mutant-bundle-"))
    try:
        notebook = build_notebook(list(replacements), folder / "bundle.ipynb")
        return graded(notebook, folder / "results.json", suite="all", training=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_variant(variant: Variant, folder: Path) -> None:
    """Grade the variant: every test passes, its component's training tests included when it trains."""
    notebook = build_notebook(variant.replacements, folder / "variant.ipynb")
    document = graded(notebook, folder / "results.json", suite="all", training=variant.trains or False)
    assert failed_numbers(document) == set(), explain(document)
    if variant.trains:
        ran = {test["number"] for test in document["tests"]}
        assert set(training_tests()[variant.trains]) <= ran, f"{variant.name}: its training tests did not run"
