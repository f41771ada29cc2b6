"""The student-style corpus, graded for real: whole submissions written from the student template the way
students of this course write them (tests/corpus/students/). Here the correct ones, which must pass every
test; the buggy ones are in test_students_bugs.py (two files, so that the two test processes share them).
The grades leave out the training tests: every bug of the corpus shows without them."""

from __future__ import annotations

import pytest

from tests.corpus.harness import component_points
from tests.corpus.students.build import write
from tests.corpus.students.check import CORRECT, FILES, check_student
from tests.corpus.students.expected import EXPECTED
from tests.corpus.students.roster import STUDENTS

pytestmark = pytest.mark.timeout(1800)  # a grade: a minute or more on a busy machine


def test_every_submission_has_an_expected_outcome_and_a_file():
    assert set(EXPECTED) == set(FILES), (
        f"without an outcome: {set(FILES) - set(EXPECTED)}; stale: {set(EXPECTED) - set(FILES)}"
    )
    missing = [name for name, path in FILES.items() if not path.is_file()]
    assert not missing, f"run `python -m tests.corpus.students.build`; missing: {missing}"
    for name, outcome in EXPECTED.items():
        assert set(outcome.loses) <= set(component_points()), f"{name}: unknown component in {outcome.loses}"


def test_the_builder_reproduces_the_committed_submissions(tmp_path):
    """The files are the builder's output for the current student template (rebuild when it changes)."""
    stale = [
        student.filename
        for student in STUDENTS
        if write(student, tmp_path).read_bytes() != FILES[student.name].read_bytes()
    ]
    assert not stale, f"these differ from what `python -m tests.corpus.students.build` writes now: {stale}"


@pytest.mark.parametrize("name", CORRECT, ids=str)
def test_a_correct_student_submission_scores_full_marks(synthetic, tmp_path, name: str):
    check_student(name, tmp_path)
