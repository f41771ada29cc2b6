"""One grade: ingest the submission, run the grading suites (pytest, in this trusted process) against a
sandboxed worker, and write Gradescope's results.json."""

from autograder.grading.grade import SUITE_DIR, SUITES, find_submission, grade
from autograder.grading.plugin import GradingPlugin

__all__ = ["SUITES", "SUITE_DIR", "GradingPlugin", "find_submission", "grade"]
