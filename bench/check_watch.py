"""Benchmark: `check --watch` as a student uses it: how long from a save to the answer.

Copies the template into a temporary folder, runs `python -m autograder check --watch` on the copy, waits for the
first answer (the template: 0 points), then saves the reference over it and times the answer to that save, then
saves the template again and times that too; each wait starts once the watcher says it is watching. The `public`
profile must be prepared (`check` prepares it on first use). Prints one JSON line: the seconds to the first answer
(process start included) and to each later one, with the scores the answers gave.

Run: PYTHONPATH=. PS7_CACHE=... .venv/bin/python bench/check_watch.py [--saves 2] [--pause 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "student_template" / "ps7.ipynb"
REFERENCE = REPO / "reference" / "ps7_solution.ipynb"
SCORE = re.compile(r"Public tests: ([\d.]+) / ([\d.]+) points")
WATCHING = "==== watching"


def _next_answer(process: subprocess.Popen[str], log: list[str]) -> tuple[float, str]:
    """Seconds until the next summary line, and its score; the lines read go to `log`."""
    started = time.monotonic()
    score = None
    for line in process.stdout:
        log.append(line)
        found = SCORE.search(line)
        if found:
            score = f"{found.group(1)} / {found.group(2)}"
        if line.startswith(WATCHING):
            return time.monotonic() - started, score or "no summary"
    raise RuntimeError("check --watch ended early:\n" + "".join(log[-40:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=2, help="saves after the first answer (2)")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds of editing before each save (5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ps7-watch-bench-") as folder:
        notebook = Path(folder) / "ps7.ipynb"
        shutil.copyfile(TEMPLATE, notebook)
        command = [sys.executable, "-m", "autograder", "check", "--watch", str(notebook)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        log: list[str] = []
        try:
            first, first_score = _next_answer(process, log)
            answers = []
            for index in range(args.saves):
                time.sleep(args.pause)  # the student edits; the next worker imports meanwhile
                shutil.copyfile(REFERENCE if index % 2 == 0 else TEMPLATE, notebook)
                answers.append(_next_answer(process, log))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    report = {
        "first_answer_s": round(first, 1),
        "first_score": first_score,
        "after_save_s": [round(seconds, 1) for seconds, _ in answers],
        "after_save_scores": [score for _, score in answers],
        "load": os.getloadavg()[0],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
