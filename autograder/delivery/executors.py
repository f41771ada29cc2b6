"""Where `batch` runs its grades: threads on this machine (`local`), or a Dask cluster (`dask`: a LocalCluster of
worker processes on this machine or the scheduler at `--scheduler`; `slurm`: Slurm jobs started by dask-jobqueue).

A task is one submission: its files travel in the task, the node runs the same `python -m autograder grade`
command on them in a private temporary folder (a process of its own, so every guarantee of the sandbox holds
there; `local` forks it from a warm fork server, `delivery/warm_start.py`, a Dask worker starts it fresh), and
the task returns what the grade reported on its private pipe with its log. Nothing is written on the TA's side by
a node: `batch` writes OUT/<id>/ from the returned result. A node that dies mid-task (killed, out of memory, its
Slurm job ended) loses only the task's attempt: the Dask scheduler gives the task to another worker, up to
`distributed.scheduler.allowed-failures` times (3), after which the row is a grader error, retried next run.

GPUs: each grade holds one device of its process's pool for its whole run (`delivery/devices.py`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from autograder.assignment.source import REPO_ROOT
from autograder.delivery.devices import GPU_ENVIRONMENT, DevicePool, node_pool
from autograder.delivery.warm_start import ForkedGrade, die_with_parent, start_fork_server, start_forked_grade
from autograder.results.plugin import RESULTS_FD_ENVIRONMENT
from autograder.worker.confinement import unavailable_reason
from autograder.worker.isolation import UNSAFE_SAME_USER_FLAG
from autograder.worker.leftovers import remove_abandoned

OK, GRADER_ERROR = "ok", "grader-error"
EXECUTORS = ("local", "dask", "slurm")
_REPORT_WAIT_SECONDS = 10.0  # after the grade exits, for its pipe to drain (a child still holding it: no more)
_MAX_REPORT_BYTES = 16 * 1024**2
_MAX_LOG_BYTES = 4 * 1024**2  # a grade's log comes back whole up to this, else its end
PRIVATE_PREFIX = "ps7-batch-"  # + the pid of the process grading in it + "-": a folder per task


Grade = subprocess.Popen[bytes] | ForkedGrade  # a running grade: wait(timeout) and kill()


class ExecutorError(Exception):
    """The executor cannot start (its engine is not installed, its cluster cannot be reached)."""


@dataclass(frozen=True)
class GradeTask:
    """Everything a node needs to grade one submission: its files (relative path -> content; a single file
    has the path "") and the options of the batch."""

    id: str
    name: str  # the submission's file or folder name, kept on the node (the grader reads the suffix)
    files: dict[str, bytes]
    profile: str
    suite: str
    timeout: float
    unsafe_same_user: bool = False
    threads: int | None = None  # torch threads for the grade; None: this node's cores / its concurrent grades
    networked: bool = False  # run by a Dask worker: refused where student code would have the network


@dataclass(frozen=True)
class TaskResult:
    """What grading one submission gave on its node."""

    status: str  # OK: the grade ended normally and `reported` holds its report; else GRADER_ERROR
    reason: str
    reported: bytes
    log: bytes
    seconds: float
    host: str = ""
    device: str | None = None


def pack_submission(path: Path) -> dict[str, bytes]:
    """The files of a submission (a file, or a folder's regular files by relative path; links are left out), as a
    task carries them."""
    if path.is_file():
        return {"": path.read_bytes()}
    files = sorted(item for item in path.rglob("*") if item.is_file() and not item.is_symlink())
    return {item.relative_to(path).as_posix(): item.read_bytes() for item in files}


def _unpack(task: GradeTask, into: Path) -> Path:
    target = into / task.name
    if "" in task.files:
        target.write_bytes(task.files[""])
        return target
    target.mkdir()
    for relative, content in task.files.items():
        destination = (target / relative).resolve()
        if not destination.is_relative_to(target.resolve()):
            raise ValueError(f"a submission file escapes its folder: {relative!r}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    return target


# ---------------------------------------------------------------------------------------------- one grade
class Running:
    """The grade processes of this process, so an interrupted batch stops them all."""

    def __init__(self) -> None:
        self._processes: set[Grade] = set()
        self._lock = threading.Lock()

    def add(self, process: Grade) -> None:
        with self._lock:
            self._processes.add(process)

    def discard(self, process: Grade) -> None:
        with self._lock:
            self._processes.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            for process in self._processes:
                process.kill()


def run_grade_task(
    task: GradeTask, pool: DevicePool | None = None, running: Running | None = None, warm: bool = False
) -> TaskResult:
    """Grade one submission here with `python -m autograder grade` (PS7_PYTHON, else this interpreter), on a
    device of `pool` (default: this process's), and return what its grade reported on its private pipe. `warm`:
    fork the grade from the batch's fork server (`delivery/warm_start.py`) rather than start an interpreter."""
    pool = pool if pool is not None else node_pool()
    started = time.monotonic()
    if task.networked and not task.unsafe_same_user:
        problem = unavailable_reason()
        if problem is not None:
            reason = (
                f"refusing to grade on {socket.gethostname()}: the worker cannot have namespaces there ({problem}), "
                "so student code would have the network and could reach the Dask cluster, which runs what it is sent"
            )
            return TaskResult(GRADER_ERROR, reason, b"", b"", 0.0, socket.gethostname())
    python = os.environ.get("PS7_PYTHON") or sys.executable
    env = dict(os.environ)
    threads = task.threads or max(1, len(os.sched_getaffinity(0)) // max(1, _concurrent_grades()))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    remove_abandoned(PRIVATE_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-") as private, pool.hold() as device:
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        folder = Path(private)
        try:
            submission = _unpack(task, folder)
        except (OSError, ValueError) as error:
            return TaskResult(GRADER_ERROR, f"could not unpack the submission: {error}", b"", b"", 0.0)
        command = ["grade", str(submission), "--results", str(folder / "results.json")]
        command += ["--profile", task.profile, "--suite", task.suite]
        command += [UNSAFE_SAME_USER_FLAG] if task.unsafe_same_user else []

        def start(results_fd: int) -> Grade:
            grade_env = {**env, RESULTS_FD_ENVIRONMENT: str(results_fd)}
            if warm:
                return start_forked_grade(python, command, grade_env, folder / "grade.log", results_fd)
            with (folder / "grade.log").open("wb") as log:
                return subprocess.Popen(
                    [python, "-m", "autograder", *command],
                    cwd=REPO_ROOT,
                    env=grade_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(results_fd,),
                    preexec_fn=die_with_parent,
                )

        status, reason, reported, log = _run(start, folder / "grade.log", task.timeout, running)
    return TaskResult(status, reason, reported, log, round(time.monotonic() - started, 1), socket.gethostname(), device)


def _concurrent_grades() -> int:
    """How many grades this process runs at once: its Dask worker's threads, else 1."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError):
        return 1


def _run(
    start: Callable[[int], Grade], log_path: Path, timeout: float, running: Running | None
) -> tuple[str, str, bytes, bytes]:
    """Run one grade, `start(results_fd)`: (status, reason, the results document it reported on its pipe, its log)."""
    read_end, write_end = os.pipe()
    reported = bytearray()
    try:
        try:
            process = start(write_end)
        except Exception as error:  # noqa: BLE001 - this row's grader error; the batch goes on, a rerun retries it
            os.close(read_end)
            return GRADER_ERROR, f"the grade could not be started: {type(error).__name__}: {error}", b"", b""
        os.close(write_end)
        write_end = -1
        reader = threading.Thread(target=_read_all, args=(read_end, reported), daemon=True)
        reader.start()
        if running is not None:
            running.add(process)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log = _tail(log_path)
            return GRADER_ERROR, f"grading took longer than {timeout:g} s and was stopped", b"", log
        finally:
            if running is not None:
                running.discard(process)
        reader.join(timeout=_REPORT_WAIT_SECONDS)
    finally:
        if write_end >= 0:
            os.close(write_end)
    log = _tail(log_path)
    if code != 0:
        reason = f"the grader exited with status {code}: {last_line(log.decode(errors='replace'))}"
        return GRADER_ERROR, reason, b"", log
    return OK, "", bytes(reported), log


def _tail(path: Path) -> bytes:
    if not path.is_file():  # a grade that died before writing anything
        return b""
    with path.open("rb") as stream:
        stream.seek(max(0, path.stat().st_size - _MAX_LOG_BYTES))
        return stream.read()


def _read_all(fd: int, into: bytearray) -> None:
    """Read a pipe to its end (when every process holding its write end has exited or closed it)."""
    try:
        while chunk := os.read(fd, 1 << 16):
            into += chunk
            if len(into) > _MAX_REPORT_BYTES:
                into.clear()  # unusable: the batch refuses the empty report
                break
    finally:
        os.close(fd)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


# ------------------------------------------------------------------------------------------------ executors
@dataclass
class LocalExecutor:
    """`jobs` grades at once in threads of this process, each a `grade` process, on this machine's GPUs; `warm`:
    forked from this batch's fork server (`delivery/warm_start.py`), else each a fresh interpreter."""

    jobs: int
    devices: Sequence[str] = ()
    running: Running = field(default_factory=Running)
    warm: bool = True

    def run(self, tasks: Iterable[GradeTask], on_done: Callable[[GradeTask, TaskResult], None]) -> None:
        pool = DevicePool(self.devices)
        if self.warm:
            start_fork_server(sys.executable)
        with ThreadPoolExecutor(max_workers=self.jobs) as threads:
            futures = {threads.submit(run_grade_task, task, pool, self.running, self.warm): task for task in tasks}
            try:
                for future in as_completed(futures):
                    on_done(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                self.running.kill_all()
                raise


@dataclass
class DaskExecutor:
    """Grades as Dask tasks: on a LocalCluster of `jobs` worker processes (kind "dask", no scheduler), on the
    cluster whose scheduler is at `scheduler`, or on `jobs` Slurm jobs of one worker each (kind "slurm",
    configured by dask-jobqueue's `jobqueue.slurm` settings: queue, account, cores, memory, walltime)."""

    kind: str
    jobs: int
    scheduler: str | None = None
    devices: Sequence[str] = ()

    def run(self, tasks: Iterable[GradeTask], on_done: Callable[[GradeTask, TaskResult], None]) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError as error:
            raise ExecutorError(f"--executor {self.kind} needs Dask: pip install '.[cluster]' ({error})") from error
        tasks = list(tasks)
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(self._client(Client))
            futures = {}
            for task in tasks:
                future = client.submit(run_grade_task, task, key=f"grade-{task.id}-{os.urandom(4).hex()}", pure=False)
                futures[future] = task
            try:
                for future in as_completed(futures):
                    task = futures[future]
                    try:
                        result = future.result()
                    except Exception as error:  # noqa: BLE001 - KilledWorker and other engine errors: one row
                        reason = f"the cluster could not run the grade ({type(error).__name__}: {error})"
                        result = TaskResult(GRADER_ERROR, last_line(reason), b"", b"", 0.0)
                    on_done(task, result)
            except BaseException:
                client.cancel(list(futures), force=True)
                raise

    @contextlib.contextmanager
    def _client(self, client_class: type) -> Iterator[object]:
        if self.scheduler is not None:
            with client_class(self.scheduler) as client:
                yield client
            return
        if self.kind == "slurm":
            try:
                from dask_jobqueue import SLURMCluster
            except ImportError as error:
                message = f"--executor slurm needs dask-jobqueue: pip install '.[cluster]' ({error})"
                raise ExecutorError(message) from error
            # One worker process per Slurm job: it owns the job's cores and GPUs and gives each grade its share.
            cluster = SLURMCluster(processes=1)
            cluster.scale(jobs=self.jobs)
        else:
            from distributed import LocalCluster

            # With GPUs, one worker process owns them all and runs one grade per device at once.
            workers, threads = (1, len(self.devices)) if self.devices else (self.jobs, 1)
            env = {GPU_ENVIRONMENT: ",".join(self.devices)} if self.devices else {}
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                env={"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // self.jobs)), **env},
            )
        with cluster, client_class(cluster) as client:
            yield client
