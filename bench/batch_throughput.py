"""Grades per hour of `batch` on copies of one notebook: a real `batch` (full suite, training on), timed with
the machine's load sampled every 10 s, since this machine is shared.

    .venv/bin/python bench/batch_throughput.py [--copies 20] [--notebook reference/ps7_solution.ipynb ...]
        [--work /tmp/batch-bench] -- [batch options, e.g. --jobs 1 --executor dask]

With several notebooks (e.g. `--notebook tests/corpus/students/*`), the copies take them in turn.

Prints one JSON line: copies, wall seconds, grades per hour, mean and peak 1-minute load, the batch's exit
status and the CSV's totals (every copy of the reference must score full marks).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--notebook", type=Path, nargs="+", default=[REPO_ROOT / "reference" / "ps7_solution.ipynb"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/batch-bench"))
    parser.add_argument("batch_options", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    options = [option for option in args.batch_options if option != "--"]
    folder, out = args.work / "submissions", args.work / "graded"
    shutil.rmtree(args.work, ignore_errors=True)
    folder.mkdir(parents=True)
    notebooks = args.notebook
    for index in range(args.copies):
        source = notebooks[index % len(notebooks)]
        shutil.copy(source, folder / f"copy_{index:03d}{source.suffix}")
    samples: list[float] = [_load()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(10):
            samples.append(_load())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    argv = ["nice", "-n", "10", sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out), *options]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO_ROOT, env=dict(os.environ), check=False)
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    with (out / "scores.csv").open(newline="") as stream:
        totals = sorted({row["total"] for row in csv.DictReader(stream)})
    report = {
        "copies": args.copies,
        "options": options,
        "seconds": round(seconds, 1),
        "grades_per_hour": round(args.copies * 3600 / seconds, 1),
        "load_mean": round(sum(samples) / len(samples), 2),
        "load_peak": max(samples),
        "exit_status": done.returncode,
        "distinct_totals": totals,
    }
    print(json.dumps(report))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
