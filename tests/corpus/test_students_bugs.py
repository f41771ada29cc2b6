"""The buggy submissions of the student-style corpus (tests/corpus/students/), graded for real: each loses
points in its own component only, every other component keeping full marks."""

from __future__ import annotations

import pytest

from tests.corpus.students.check import BUGGY, check_student

pytestmark = pytest.mark.timeout(1800)  # a grade: a minute or more on a busy machine


@pytest.mark.parametrize("name", BUGGY, ids=str)
def test_a_buggy_student_submission_loses_points_in_its_component_only(synthetic, tmp_path, name: str):
    check_student(name, tmp_path)
