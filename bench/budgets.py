"""Benchmark: the grading budgets of DESIGN.md section 6 on the prepared synthetic profile.

- `check` on the reference (public suite; budget 20 s);
- a full `grade` of the reference (budget 4 minutes, peak memory 2 GB for the grader and its worker), three
  times: one run on this shared machine varies by about 10%, so the ratio uses the median;
- executing the reference notebook top to bottom with nbclient on the same data (`PS7_PROFILE=synthetic`),
  right after, and the ratio of the two (goal: grade at least 10x faster), with both verdicts.

Run: .venv/bin/python bench/budgets.py [--skip-notebook] [--grades N]
Peak memory is the largest sum of resident memory over the grader's process tree, sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference" / "ps7_solution.ipynb"


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Wall seconds, peak tree RSS in bytes, and the finished process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    seconds = time.perf_counter() - started
    return seconds, peak[0], subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebook", action="store_true", help="do not execute the notebook with nbclient")
    parser.add_argument("--grades", type=int, default=3, help="full grades to time; the ratio uses their median (3)")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    python = sys.executable
    subprocess.run([python, "-m", "autograder", "prepare", "--profile", "synthetic"], env=env, check=True)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.json"
        check_s, check_rss, _ = measured([python, "-m", "autograder", "check", str(REFERENCE)], env)
        grades, scores = [], []
        for _ in range(args.grades):
            grades.append(
                measured(
                    [python, "-m", "autograder", "grade", str(REFERENCE), "--results", str(results), "--suite", "all"],
                    env,
                )[:2]
            )
            document = json.loads(results.read_text())
            scores.append(f"{document['score']:g}/{sum(test['max_score'] for test in document['tests']):g}")
    grade_s = statistics.median(seconds for seconds, _ in grades)
    grade_rss = max(rss for _, rss in grades)
    print(f"load average before: {load:.1f}")
    print(f"check on the reference: {check_s:.1f} s (peak {check_rss / 2**20:.0f} MiB)")
    each = ", ".join(f"{seconds:.1f} s" for seconds, _ in grades)
    print(
        f"full grade of the reference: median {grade_s:.1f} s ({each}), peak {grade_rss / 2**20:.0f} MiB, "
        f"scores {', '.join(scores)}"
    )
    if args.skip_notebook:
        return
    notebook_env = {**env, "PS7_PROFILE": "synthetic"}
    code = (
        "import nbformat, nbclient, sys; nb = nbformat.read(sys.argv[1], as_version=4); "
        "nbclient.NotebookClient(nb, timeout=3600, kernel_name='python3').execute(); "
        "print([line for cell in nb.cells if cell.cell_type == 'code' for out in cell.get('outputs', []) "
        "for line in out.get('text', '').splitlines() if 'accuracy' in line])"
    )
    notebook_s, notebook_rss, ran = measured([python, "-c", code, str(REFERENCE)], notebook_env)
    print(f"reference notebook with nbclient: {notebook_s:.1f} s (peak {notebook_rss / 2**20:.0f} MiB)")
    print(f"notebook accuracies: {ran.stdout.strip()[-400:]}")
    print(f"ratio notebook / grade: {notebook_s / grade_s:.1f}x")


if __name__ == "__main__":
    main()
