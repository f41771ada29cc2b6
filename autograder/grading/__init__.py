"""One grade: ingest the submission, run the grading suites (pytest, in this trusted process) against a
sandboxed worker, and write Gradescope's results.json. `GradingPlugin` lives in `autograder.grading.plugin`
(it imports torch, which `grade` imports only once its worker has begun)."""

from autograder.grading.grade import SUITE_DIR, SUITES, find_submission, grade

__all__ = ["SUITES", "SUITE_DIR", "find_submission", "grade"]
