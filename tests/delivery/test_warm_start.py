"""`batch`'s warm start: grades forked from a fork server that imported the grader once. A forked grade must
give what a fresh interpreter gives, the fork server must stay safe to fork (one thread, torch imported but
never run), a forked grade past its time is killed with everything it started, and a batch killed by SIGKILL
leaves no grade behind. Real grades, a real fork server, real processes."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.delivery.devices import DevicePool
from autograder.delivery.executors import GRADER_ERROR, OK, GradeTask, pack_submission, run_grade_task
from autograder.delivery.warm_start import start_forked_grade
from autograder.worker.client import PROFILE_COPY_PREFIX
from autograder.worker.spawn import PRIVATE_DIR_PREFIX

pytestmark = pytest.mark.slow


def _task(notebook: Path, timeout: float = 600) -> GradeTask:
    return GradeTask("id", notebook.name, pack_submission(notebook), "synthetic", "public", timeout, threads=1)


def _tests(reported: bytes) -> list[tuple[str, float, str]]:
    return [(test["name"], test["score"], test["status"]) for test in json.loads(reported)["tests"]]


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _status(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def cache_env(synthetic_cache, monkeypatch):
    """The batch's environment as a TA's shell gives it: no thread counts (the fork server sets its own)."""
    monkeypatch.setenv("PS7_CACHE", str(synthetic_cache))
    for name in ("PS7_PYTHON", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_a_forked_grade_gives_what_a_fresh_interpreter_gives_and_the_fork_server_stays_safe_to_fork(cache_env):
    """The reference and the template, each graded forked and fresh: the same tests, scores and statuses. The fork
    server has imported torch (its library is mapped) and holds one thread: torch never started its pool there."""
    for notebook in (REPO_ROOT / REFERENCE_NOTEBOOK, REPO_ROOT / TEMPLATE_NOTEBOOK):
        forked = run_grade_task(_task(notebook), warm=True)
        fresh = run_grade_task(_task(notebook), warm=False)
        assert forked.status == fresh.status == OK, (forked.reason, forked.log[-2000:])
        assert _tests(forked.reported) == _tests(fresh.reported)
        assert b"results written to" in forked.log, forked.log[-2000:]
    scores = [score for _, score, _ in _tests(forked.reported)]
    assert scores and not any(scores), "the template scores nothing"
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    assert server is not None and _status(server, "Threads") == "1"
    assert "libtorch" in Path(f"/proc/{server}/maps").read_text(), "the fork server imported torch"
    assert _children(server) == [], "each grade ended with its task"


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the sandboxed worker's environment, which needs root")
def test_a_forked_grade_passes_its_device_on_to_its_worker(cache_env):
    """The fork server's environment is the batch's; each grade's device is set in the forked child, and reaches
    what the grade starts (its sandboxed worker) as it did from a fresh interpreter."""
    seen: list[int] = []
    grading = threading.Thread(
        target=lambda: seen.append(
            len(run_grade_task(_task(REPO_ROOT / TEMPLATE_NOTEBOOK), DevicePool(["13"]), warm=True).reported)
        )
    )
    grading.start()
    devices = set()
    while grading.is_alive():
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and b"autograder.worker.server" in (entry / "cmdline").read_bytes():
                    devices.update(v for v in (entry / "environ").read_bytes().split(b"\0") if v.startswith(b"CUDA_V"))
            except OSError:
                continue
        time.sleep(0.05)
    grading.join()
    assert seen and seen[0] > 0, "the grade reported"
    assert b"CUDA_VISIBLE_DEVICES=13" in devices, devices


def test_a_forked_grade_past_its_time_is_killed_with_its_worker(cache_env):
    started = time.monotonic()
    result = run_grade_task(_task(REPO_ROOT / REFERENCE_NOTEBOOK, timeout=3), warm=True)
    assert result.status == GRADER_ERROR and "longer than 3 s" in result.reason, result
    assert time.monotonic() - started < 60
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    deadline = time.monotonic() + 10
    while _children(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _children(server) == [], "the killed grade is gone"


def _descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, by pid, with its command name."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            parents[int(entry.name)], names[int(entry.name)] = int(rest[1]), name
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def _worker_folders(grade: int) -> list[Path]:
    """The private folder and the profile copy that grade process `grade` made for its worker."""
    scratch = Path(tempfile.gettempdir())
    return [path for prefix in (PRIVATE_DIR_PREFIX, PROFILE_COPY_PREFIX) for path in scratch.glob(f"{prefix}{grade}-*")]


def _parent(pid: int) -> int | None:
    try:
        return int(_status(pid, "PPid"))
    except (OSError, AssertionError):  # it has exited meanwhile
        return None


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = _status(pid, "State")
        except (OSError, AssertionError):
            continue
        if not state.startswith("Z"):
            alive.append(pid)
    return alive


def test_a_batch_killed_mid_grade_leaves_no_grade_and_no_worker_behind(synthetic_cache, cache_env, tmp_path):
    """SIGKILL runs no cleanup in the batch: each grade follows it at once (its lifeline closes), its sandboxed
    worker with the grade (bubblewrap's --die-with-parent), and the fork server exits. The folders the killed
    grades made for their workers stay behind until the next grade's worker removes them."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    for index in range(2):
        shutil.copy(REPO_ROOT / REFERENCE_NOTEBOOK, folder / f"student_{index}.ipynb")
    env = {key: value for key, value in os.environ.items() if key != "PS7_PYTHON"}
    env["PS7_CACHE"] = str(synthetic_cache)
    argv = [sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(tmp_path / "graded"), "--jobs", "2"]
    batch = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            below = _descendants(batch.pid)
            parents = {pid: _parent(pid) for pid in below}
            helpers = [pid for pid in below if parents[pid] == batch.pid]  # the fork server, the resource tracker
            grades = [pid for pid in below if parents[pid] in helpers]
            # A worker: bubblewrap started by a grade, running its inner bubblewrap (not the short availability probe).
            workers = [
                pid
                for pid, name in below.items()
                if name == "bwrap" and parents[pid] in grades and pid in parents.values()
            ]
            folders = [_worker_folders(pid) for pid in grades]
            if len(workers) >= 2 and all(len(made) == 2 for made in folders) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(grades) == len(workers) == 2, f"both grades started their workers: {below}"
        left = [path for made in folders for path in made]
        assert len(left) == 4, f"each grade made its worker's two folders: {left}"
    finally:
        os.kill(batch.pid, signal.SIGKILL)
        batch.wait()
    graders = [pid for pid in below if pid not in helpers]
    deadline = time.monotonic() + 10
    while _alive(graders) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(graders) == [], f"grades or workers left running: {_alive(graders)} of {below}"
    deadline = time.monotonic() + 60  # the fork server's own exit (torch's teardown) takes seconds
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(helpers) == [], f"the batch's fork server or resource tracker outlived it: {below}"

    # SIGKILL left them; the next worker made on this machine (this test's, or another test's beside it) removes them.
    assert run_grade_task(_task(REPO_ROOT / TEMPLATE_NOTEBOOK), warm=True).status == OK
    assert [path for path in left if path.exists()] == [], "the next grade's worker removed what the killed ones left"


def test_grades_started_and_ended_at_once_each_report_their_own_exit_status(cache_env, tmp_path):
    """The fork server hands a child's exit status over one pipe, to whoever reads it first; a start polls the other
    children. Six threads fork 120 grades of a missing file (usage error: exit 2) at once: every one says 2, none
    the 255 of a status read by another thread."""

    def one(index: int) -> int:
        folder = tmp_path / str(index)
        folder.mkdir()
        read_end, write_end = os.pipe()
        try:
            command = ["grade", str(folder / "missing.ipynb"), "--results", str(folder / "results.json")]
            grade = start_forked_grade(sys.executable, command, dict(os.environ), folder / "grade.log", write_end)
        finally:
            os.close(write_end)
        try:
            return grade.wait(120)
        finally:
            os.close(read_end)

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(one, range(120)))
    assert codes == [2] * 120, sorted(set(codes))
