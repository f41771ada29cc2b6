"""Grading one submission of the student corpus for real and checking it against its expected outcome."""

from __future__ import annotations

from pathlib import Path

from tests.corpus.harness import component_points, explain, graded, scores_by_component
from tests.corpus.students.build import FOLDER
from tests.corpus.students.expected import EXPECTED
from tests.corpus.students.roster import STUDENTS

FILES = {student.name: FOLDER / student.filename for student in STUDENTS}
CORRECT = sorted(name for name, outcome in EXPECTED.items() if not outcome.loses)
BUGGY = sorted(name for name, outcome in EXPECTED.items() if outcome.loses)


def check_student(name: str, folder: Path) -> None:
    """Grade `name` (all suites, without the training tests): the components its outcome names lose points,
    every other component keeps full marks."""
    outcome = EXPECTED[name]
    path = FILES[name]
    document = graded(path, folder / "results.json", suite="all", training=False)
    scores = scores_by_component(document)
    assert set(scores) == set(component_points()), (
        f"{path.name}: components graded {sorted(scores)}:\n{explain(document)}"
    )
    for component, (score, maximum) in scores.items():
        if component in outcome.loses:
            assert score < maximum, f"{path.name}: expected {component} to lose points, it scored {score}/{maximum}"
        else:
            assert score == maximum, f"{path.name} cost points in {component} ({score}/{maximum}):\n{explain(document)}"
