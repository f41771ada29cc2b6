"""Benchmark: the student-style corpus (tests/corpus/students/) graded completely, training tests included.

CI grades each submission without the training tests (tests/corpus/test_students.py); this grades every one
with all of them, as Gradescope would, and prints per submission the time, the score, the components that
lost points and whether that is the expected outcome (`expected.py`: a correct one gets 10/10, a buggy one
loses points in its own component only).

Run: PS7_CACHE=<prepared synthetic cache> .venv/bin/python bench/students.py [NAME ...]
(no names: every submission; each grade takes a minute or two on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.corpus.harness import graded, scores_by_component  # noqa: E402
from tests.corpus.students.check import FILES  # noqa: E402
from tests.corpus.students.expected import EXPECTED  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="submissions to grade (default: all)")
    names = parser.parse_args().names or list(FILES)
    unknown = set(names) - set(EXPECTED)
    if unknown:
        parser.error(f"unknown submissions: {sorted(unknown)}")
    print(f"{'submission':42} {'seconds':>7} {'score':>6}  {'lost points in':30} verdict")
    mismatches = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the student code's printed output, not the table's
                document = graded(FILES[name], Path(scratch) / f"{name}.json", suite="all", training=True)
            seconds = time.perf_counter() - started
            scores = scores_by_component(document)
            lost = sorted(component for component, (score, maximum) in scores.items() if score < maximum)
            expected = sorted(EXPECTED[name].loses)
            verdict = "as expected" if lost == expected else f"EXPECTED {', '.join(expected) or 'full marks'}"
            mismatches += lost != expected
            print(f"{name:42} {seconds:7.0f} {document['score']:6.2f}  {', '.join(lost) or '-':30} {verdict}")
    print(f"{len(names) - mismatches}/{len(names)} as expected")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
