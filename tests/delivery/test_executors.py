"""Where batch runs its grades: the GPU placement (one grade per device at a time), and `batch --executor dask` on a
real Dask LocalCluster of worker processes, one of which is killed mid-task (its task is given to another worker),
then resumed; and a real local batch handing out a fake device list."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.delivery.devices import DevicePool, parse_devices
from autograder.delivery.executors import (
    GRADER_ERROR,
    PRIVATE_PREFIX,
    GradeTask,
    pack_submission,
    run_grade_task,
)
from autograder.worker.confinement import unavailable_reason
from autograder.worker.leftovers import remove_abandoned


def test_each_grade_holds_one_device_alone_and_waits_while_all_are_taken():
    pool = DevicePool(["0", "1"])
    holders: dict[str, int] = {"0": 0, "1": 0}
    worst = {"0": 0, "1": 0}
    given: list[str | None] = []
    lock = threading.Lock()

    def grade() -> None:
        with pool.hold() as device:
            with lock:
                given.append(device)
                holders[device] += 1
                worst[device] = max(worst[device], holders[device])
            time.sleep(0.05)
            with lock:
                holders[device] -= 1

    threads = [threading.Thread(target=grade) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(given) == 6 and set(given) == {"0", "1"}
    assert worst == {"0": 1, "1": 1}, "never two grades on one device at once"


def test_without_devices_grades_are_not_limited_and_get_none():
    pool = DevicePool([])
    with pool.hold() as first, pool.hold() as second:
        assert first is None and second is None


def test_device_lists_parse_and_refuse_repeats():
    assert parse_devices("0, 2") == ["0", "2"] and parse_devices("none") == [] and parse_devices("") == []
    with pytest.raises(ValueError, match="twice"):
        parse_devices("1,1")


def test_a_submission_folder_travels_whole_and_cannot_escape_its_folder(tmp_path):
    folder = tmp_path / "submission_7"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "ps7.ipynb").write_bytes(b"{}")
    (folder / "notes.txt").write_bytes(b"hi")
    (folder / "secret").symlink_to("/etc/hostname")
    assert pack_submission(folder) == {"nested/ps7.ipynb": b"{}", "notes.txt": b"hi"}, "a link is not followed"
    assert pack_submission(folder / "notes.txt") == {"": b"hi"}
    hostile = GradeTask("x", "x", {"../../escaped": b"!"}, "synthetic", "public", 60.0)
    result = run_grade_task(hostile, DevicePool([]))
    assert result.status == "grader-error" and "escapes its folder" in result.reason


def _wrapper(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + f'exec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


def _batch(folder: Path, out: Path, cache: Path, python: Path, *options: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PS7_CACHE": str(cache), "PS7_PYTHON": str(python)}
    argv = [sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out), "--suite", "public"]
    argv += options
    return subprocess.run(argv, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=900)


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as stream:
        return {row["id"]: row for row in csv.DictReader(stream)}


@pytest.mark.slow
@pytest.mark.skipif(unavailable_reason() is not None, reason="the dask executor needs the worker's namespaces")
def test_the_folder_of_a_task_killed_by_sigkill_is_removed_by_the_next_task_and_a_live_ones_is_kept(tmp_path):
    """SIGKILL (Slurm's time limit, the OOM killer) runs no cleanup; the next task on the node sweeps up."""
    holder = (
        "import os, sys, tempfile, time\n"
        f"folder = tempfile.mkdtemp(prefix=f'{PRIVATE_PREFIX}{{os.getpid()}}-', dir={str(tmp_path)!r})\n"
        "open(os.path.join(folder, 'results.json'), 'w').write('{}')\n"
        "print(folder, flush=True)\n"
        "time.sleep(120)\n"
    )
    killed = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    alive = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        abandoned, kept = Path(killed.stdout.readline().strip()), Path(alive.stdout.readline().strip())
        killed.kill()
        killed.wait()
        assert abandoned.is_dir() and kept.is_dir()
        assert remove_abandoned(PRIVATE_PREFIX, tmp_path) == [abandoned]
        assert not abandoned.exists() and (kept / "results.json").is_file()
    finally:
        alive.kill()
        alive.wait()


def test_dask_executor_requeues_the_task_of_a_killed_worker_and_resumes(synthetic_cache, tmp_path):
    """Three submissions on a LocalCluster of two worker processes. The first grade to start kills the Dask worker
    process that runs it (SIGKILL, as the kernel's OOM killer or a lost node would): the scheduler gives its task
    to another worker, every row is graded, and a second run skips all three."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(REPO_ROOT / REFERENCE_NOTEBOOK, folder / "submission_1.ipynb")
    for name in ("submission_2", "submission_3"):
        shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, folder / f"{name}.ipynb")
    killed = tmp_path / "killed"
    python = _wrapper(
        tmp_path / "python",
        f"case \"$*\" in *' grade '*)\n"
        f"  if mkdir {killed} 2>/dev/null; then\n"
        f"    echo $PPID > {killed}/pid; tr '\\0' ' ' < /proc/$PPID/cmdline > {killed}/cmdline\n"
        f"    kill -9 $PPID; sleep 30; exit 9\n"
        "  fi;;\n"
        "esac\n",
    )
    out = tmp_path / "graded"
    done = _batch(folder, out, synthetic_cache, python, "--executor", "dask", "--jobs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    victim = int((killed / "pid").read_text())
    assert "multiprocessing" in (killed / "cmdline").read_text(), "the killed process was a Dask worker process"
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    rows = _rows(out / "scores.csv")
    assert sorted(rows) == ["submission_1", "submission_2", "submission_3"]
    assert all(row["status"] == "ok" for row in rows.values()), rows
    assert float(rows["submission_1"]["total"]) == pytest.approx(float(rows["submission_1"]["max"]))
    assert float(rows["submission_2"]["total"]) == 0 and rows["submission_1"]["submission_id"] == "1"
    for name in rows:
        record = json.loads((out / name / "batch.json").read_text())
        assert record["status"] == "ok" and record["host"], record
        assert (out / name / "grade.log").stat().st_size > 0, "the node's log came back"

    again = _batch(folder, out, synthetic_cache, python, "--executor", "dask", "--jobs", "2")
    assert again.returncode == 0 and "3 graded by an earlier run, 0 grader errors" in again.stdout, again.stdout
    assert _rows(out / "scores.csv") == rows


@pytest.mark.slow
def test_a_local_batch_gives_each_grade_one_of_the_listed_devices_alone(synthetic_cache, tmp_path):
    """No GPU here: the devices are a fake list, passed explicitly. Each grade sees CUDA_VISIBLE_DEVICES set to one
    of them, and two grades that overlap in time never share one."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    for index in range(3):
        shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, folder / f"student_{index}.ipynb")
    seen = tmp_path / "seen"
    seen.mkdir()
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *\' grade \'*) ;; *) exec {sys.executable} "$@";; esac\n'
        f'log={seen}/$$; echo "$CUDA_VISIBLE_DEVICES $(date +%s.%N)" > $log\n'
        f'{sys.executable} "$@"; status=$?\n'
        'echo "$(date +%s.%N)" >> $log\n'
        "exit $status\n"
    )
    python.chmod(0o755)
    done = _batch(folder, tmp_path / "graded", synthetic_cache, python, "--jobs", "3", "--gpus", "7,9")
    assert done.returncode == 0, done.stdout + done.stderr
    spans = []
    for log in seen.iterdir():
        first, second = log.read_text().split("\n")[:2]
        device, start = first.split()
        spans.append((device, float(start), float(second)))
    assert len(spans) == 3 and {device for device, _, _ in spans} <= {"7", "9"}
    for index, (device, start, end) in enumerate(spans):
        for other, other_start, other_end in spans[index + 1 :]:
            overlap = start < other_end and other_start < end
            assert not (overlap and device == other), f"two grades on device {device} at once: {spans}"
    records = [json.loads((tmp_path / "graded" / f"student_{index}" / "batch.json").read_text()) for index in range(3)]
    assert sorted(record["device"] for record in records) in (["7", "7", "9"], ["7", "9", "9"])


def test_a_grade_that_cannot_be_started_is_its_rows_grader_error_not_the_batchs_end(tmp_path, monkeypatch):
    """A mistyped PS7_PYTHON: the interpreter does not exist, so no grade process starts. The task reports a grader
    error that names the cause (the batch records it and goes on; a later run retries it)."""
    notebook = tmp_path / "student.ipynb"
    shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, notebook)
    monkeypatch.setenv("PS7_PYTHON", str(tmp_path / "no-such-python"))
    task = GradeTask("id", notebook.name, pack_submission(notebook), "synthetic", "public", 60, threads=1)
    result = run_grade_task(task)
    assert result.status == GRADER_ERROR, result
    assert "could not be started" in result.reason and "no-such-python" in result.reason, result.reason
