"""Benchmark: a full grade of the reference at real sizes on a real profile's grading budgets, per phase.

Grades the reference on `synthetic-full` (STL-10's and Flickr8k's real sizes, ResNet50 and a 768-d DistilBERT
with random weights: real costs, meaningless accuracies) with the grading budgets, deadline and device of
`--budgets` (default `stl10`), and reports the wall time and the peak memory (grader and worker together) of
each phase: start-up until the first test ends, then each component's tests, whose end the results file
(rewritten after every test, listing the tests not run yet as such) shows. Training happens in the first test
that needs it, so 7.1.3 holds the autoencoder, 7.1.4 Methods II and III, 7.2.2 CLIP and its probe's features.

Run: nice -n 10 .venv/bin/python bench/real_sizes.py [--budgets stl10] [--profile synthetic-full]
(prepares the profile first when needed: about 20 minutes on 2 cores). `bench/gpu.sh` runs it with
`--budgets stl10-gpu` on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference" / "ps7_solution.ipynb"
sys.path.insert(0, str(REPO))
from autograder.profiles.profile import load_profile  # noqa: E402
from autograder.results.plugin import NOT_RUN_OUTPUT  # noqa: E402

PHASE_KEYS = ("grading_budgets", "deadline_minutes", "device", "costs")


def budget_profile(profile: str, budgets: str, folder: Path) -> Path:
    """`profile`'s data and backbones (its cache) with the grading budgets, deadline, device and costs of
    `budgets`: a JSON file in `folder`, under `profile`'s name so that it uses `profile`'s prepared cache."""
    raw = json.loads(load_profile(profile).path.read_text())
    source = json.loads(load_profile(budgets).path.read_text())
    raw.update({key: source[key] for key in PHASE_KEYS if key in source})
    raw["grading_budgets"] = source.get("grading_budgets", source["budgets"])
    path = folder / f"{raw['name']}.json"
    path.write_text(json.dumps(raw, indent=2))
    return path


def tree_usage(root: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds (user + system) of `root` and its live descendants, from /proc. CPU
    seconds say what a phase costs whatever else shares the machine: on 2 idle cores, wall >= CPU / 2."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        usage[int(entry.name)] = (pages * os.sysconf("SC_PAGE_SIZE"), (int(fields[11]) + int(fields[12])) / tick)
    rss, cpu, pending = 0, 0.0, [root]
    while pending:
        pid = pending.pop()
        rss += usage.get(pid, (0, 0.0))[0]
        cpu += usage.get(pid, (0, 0.0))[1]
        pending.extend(children.get(pid, []))
    return rss, cpu


def _component(name: str) -> str:
    return ".".join(name.split(" ", 1)[0].split(".")[:3])


Phase = tuple[str, float, float, int]  # name, wall seconds, CPU seconds, peak bytes


def timed_grade(profile: Path, results: Path, env: dict[str, str]) -> tuple[list[Phase], float, int]:
    """Grade the reference; returns the phases in order, the total seconds and the total peak. CPU seconds of
    a worker that ended within a phase (killed at a timeout) count up to its last sample."""
    command = [sys.executable, "-m", "autograder", "grade", str(REFERENCE), "--results", str(results)]
    command += ["--profile", str(profile), "--suite", "all"]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    phases: list[Phase] = []
    seen: set[str] = set()
    mark, peak, total_peak, cpu_spent, last_cpu = started, 0, 0, 0.0, 0.0

    def close(phase: str, now: float) -> None:
        nonlocal mark, peak, cpu_spent
        if phases and phases[-1][0] == phase:
            _, seconds, cpu, before = phases.pop()
            phases.append((phase, seconds + now - mark, cpu + cpu_spent, max(before, peak)))
        else:
            phases.append((phase, now - mark, cpu_spent, peak))
        mark, peak, cpu_spent = now, 0, 0.0

    while process.poll() is None:
        rss, cpu = tree_usage(process.pid)
        cpu_spent += max(0.0, cpu - last_cpu)  # a process that ended takes its CPU seconds out of the sum
        last_cpu = cpu
        peak, total_peak = max(peak, rss), max(total_peak, rss)
        try:
            tests = json.loads(results.read_text()).get("tests", [])
        except (OSError, ValueError):
            tests = []
        for test in tests:
            if test.get("output") == NOT_RUN_OUTPUT or test.get("number") in seen:
                continue  # listed from the start, not run yet; or counted already
            seen.add(test.get("number"))
            close("start-up and first test" if not phases else _component(test.get("name", "?")), time.monotonic())
        time.sleep(0.5)
    reader.join()
    now = time.monotonic()
    close("end (results, reports)", now)
    if process.returncode != 0:
        print("".join(output)[-4000:])
    return phases, now - started, total_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="synthetic-full", help="the prepared data and backbones (synthetic-full)")
    parser.add_argument("--budgets", default="stl10", help="the profile whose grading budgets are timed (stl10)")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # torch's own choice: one thread per core, as on Gradescope
    python = sys.executable
    subprocess.run([python, "-m", "autograder", "prepare", "--profile", args.profile], env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="ps7-bench-") as folder:
        profile = budget_profile(args.profile, args.budgets, Path(folder))
        budgets = json.loads(profile.read_text())["grading_budgets"]
        load = os.getloadavg()
        results = Path(folder) / "results.json"
        phases, seconds, peak = timed_grade(profile, results, env)
        document = json.loads(results.read_text())
    score = f"{document['score']:g}/{sum(test['max_score'] for test in document['tests']):g}"
    failed = [test["name"] for test in document["tests"] if test.get("score", 0) < test["max_score"]]
    print(f"profile {args.profile} with the grading budgets of {args.budgets}: {budgets}")
    print(f"cores {os.cpu_count()}, load average before {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("| phase | wall | CPU (grader + worker) | peak memory (grader + worker) |\n|---|---|---|---|")
    for phase, phase_seconds, cpu, phase_peak in phases:
        print(f"| {phase} | {phase_seconds:.0f} s | {cpu:.0f} s | {phase_peak / 2**30:.2f} GiB |")
    cpu = sum(phase[2] for phase in phases)
    whole = f"**{seconds:.0f} s ({seconds / 60:.1f} min)** | **{cpu:.0f} s** | **{peak / 2**30:.2f} GiB**"
    print(f"| **whole grade** | {whole} |")
    print(f"score {score}; load average after {os.getloadavg()[0]:.1f}")
    print(f"tests below full marks (random backbones: accuracies mean nothing): {failed}")


if __name__ == "__main__":
    main()
