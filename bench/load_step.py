"""Benchmark: the cost, per grade, of loading a submission's parts (definitions and the top-level statements
the graded definitions need) on the prepared synthetic profile; goal under 1 s.

For each notebook: the trusted analysis (`ingest` + `load_plan`; the assignment facts are derived once per
process and timed apart), and the worker's part loading (the client's wall time from the first part request
it waits for to the last answer: every part's own run plus one round trip each), median of `--runs` fresh
workers. The provided code's own load (importing torch, building SETUP) is not part of it: it is the same
with or without the parts.

Run: .venv/bin/python bench/load_step.py [NOTEBOOK ...] [--runs N]
Without notebooks: the reference, and the template filled in the students' style of
tests/grading/test_statements_grade.py (five top-level statements the graded functions use).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.ingest import ingest  # noqa: E402
from autograder.ingest.dependencies import assignment_facts, load_plan  # noqa: E402
from autograder.worker.client import Worker  # noqa: E402


def _timed_parts(worker: Worker) -> float:
    """Start the worker and return the seconds its part requests took, as the client saw them."""
    receive = worker._load_parts
    elapsed: list[float] = []

    def timed(current):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return receive(current)
        finally:
            elapsed.append(time.perf_counter() - started)

    worker._load_parts = timed  # type: ignore[method-assign]
    worker.start()
    return sum(elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    notebooks = list(options.notebooks)
    if not notebooks:
        from tests.grading.test_statements_grade import student_notebook

        notebooks = [REPO / "reference" / "ps7_solution.ipynb", student_notebook(Path(tempfile.mkdtemp()) / "s.ipynb")]
    started = time.perf_counter()
    assignment_facts()
    print(f"assignment facts (once per grading process): {time.perf_counter() - started:.3f} s")
    for path in notebooks:
        started = time.perf_counter()
        submission = ingest(path)
        plan = load_plan(submission)
        analysis = time.perf_counter() - started
        statements = sum(1 for part in plan.parts if part.name.startswith("cell "))
        loads = []
        for _ in range(options.runs):
            with Worker(submission) as worker:
                loads.append(_timed_parts(worker))
        runs = ", ".join(f"{seconds:.3f}" for seconds in loads)
        print(
            f"{path.name}: {len(plan.parts)} parts ({statements} statements), ingest + plan {analysis:.3f} s, "
            f"worker part loading median {statistics.median(loads):.3f} s (runs: {runs})"
        )


if __name__ == "__main__":
    main()
