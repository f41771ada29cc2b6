"""The student-style corpus, graded for real: whole submissions written from the student template the way
students of this course write them (tests/corpus/students/). A correct one passes every test; a buggy one
loses points in its own component only, every other component keeping full marks. The grade leaves out the
training tests, except the component's whose bug only training shows (`expected.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus.harness import COMPONENT_POINTS, explain, graded, scores_by_component
from tests.corpus.students.build import FOLDER, write
from tests.corpus.students.expected import EXPECTED, Outcome
from tests.corpus.students.roster import STUDENTS

pytestmark = pytest.mark.timeout(1800)  # a grade, with training for some: minutes on a busy machine

FILES = {student.name: FOLDER / student.filename for student in STUDENTS}


def test_every_submission_has_an_expected_outcome_and_a_file():
    assert set(EXPECTED) == set(FILES), (
        f"without an outcome: {set(FILES) - set(EXPECTED)}; stale: {set(EXPECTED) - set(FILES)}"
    )
    missing = [name for name, path in FILES.items() if not path.is_file()]
    assert not missing, f"run `python -m tests.corpus.students.build`; missing: {missing}"
    for name, outcome in EXPECTED.items():
        assert set(outcome.loses) <= set(COMPONENT_POINTS), f"{name}: unknown component in {outcome.loses}"
        assert outcome.training in (None, *outcome.loses), f"{name}: trains a component it does not expect to fail"


def test_the_builder_reproduces_the_committed_submissions(tmp_path):
    """The files are the builder's output for the current student template (rebuild when it changes)."""
    stale = [
        student.filename
        for student in STUDENTS
        if write(student, tmp_path).read_bytes() != FILES[student.name].read_bytes()
    ]
    assert not stale, f"these differ from what `python -m tests.corpus.students.build` writes now: {stale}"


def check_student(path: Path, outcome: Outcome, folder: Path) -> None:
    document = graded(path, folder / "results.json", suite="all", training=outcome.training or False)
    scores = scores_by_component(document)
    assert set(scores) == set(COMPONENT_POINTS), (
        f"{path.name}: components graded {sorted(scores)}:\n{explain(document)}"
    )
    for component, (score, maximum) in scores.items():
        if component in outcome.loses:
            assert score < maximum, f"{path.name}: expected {component} to lose points, it scored {score}/{maximum}"
        else:
            assert score == maximum, f"{path.name} cost points in {component} ({score}/{maximum}):\n{explain(document)}"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_student_submission_gets_its_expected_grade(synthetic, tmp_path, name: str):
    check_student(FILES[name], EXPECTED[name], tmp_path)
