"""Benchmark: `prepare --profile synthetic` from an empty cache, then again (must do nothing).

Run: .venv/bin/python bench/prepare_synthetic.py    (budget in DESIGN.md section 6: at most 2 minutes)
"""

import os
import subprocess
import sys
import tempfile
import time


def timed_prepare(cache: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "autograder", "prepare", "--profile", "synthetic"],
        check=True,
        env={**os.environ, "PS7_CACHE": cache, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        first = timed_prepare(cache)
        second = timed_prepare(cache)
    print(f"prepare --profile synthetic from an empty cache: {first:.1f} s; second call: {second:.1f} s")


if __name__ == "__main__":
    main()
