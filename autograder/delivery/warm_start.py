"""`batch`'s grades forked from a process that has imported the grader once: a warm start for the trusted side.

Each grade still runs in a process of its own, as `python -m autograder grade` would (its own memory limit,
deadline, fresh sandboxed worker, log and exit status), but that process is forked from `multiprocessing`'s fork
server, which imported torch, pytest and the grading package once for the whole batch, instead of importing
them again for every submission. Only the grader's own imports run in the fork server: no torch operation (a
fork after torch's thread pool exists can hang), no CUDA, no submission, so nothing passes from one grade to
the next. Its socket lies in a folder of the batch's user with mode 0700, which student code cannot reach (a
private `/tmp` under bubblewrap, another uid without it; with `--unsafe-same-user` it runs as that user anyway).
Forking the sandboxed worker the same way was not built: BENCHMARKS.md ("Removing the per-grade start cost") says
why.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from autograder.assignment.source import REPO_ROOT
from autograder.results.plugin import RESULTS_FD_ENVIRONMENT

# What every grade imports before it reads its submission (`-X importtime` of a grade): the command line, the
# grading plugin with torch and the probes, pytest; first, the thread counts of a process that forks. The suites
# are left to pytest, which rewrites their asserts.
PRELOAD = (
    "autograder.delivery.single_threaded",
    "autograder.cli",
    "autograder.grading.grade",
    "autograder.grading.plugin",
    "autograder.results",
    "pytest",
)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a grade's process, first thing: SIGKILL it when the process that started it dies (a Dask worker killed
    mid-task, or the fork server of a batch that was killed, must not leave its grade running)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# Python's fork server hands each child's exit status over one pipe, read by whoever polls first: `start()`
# polls the other children, so a start racing a `join()` can take the status from it (which then reads 255).
# Starts and joins take turns; the waiting itself happens outside the lock.
_TURNS = threading.Lock()


def fork_server_is_private() -> bool:
    """Python's fork server listens on a socket only its user can reach from 3.10.9 and 3.11.1 on; before, on an
    abstract socket any local process could use to run code as the grader (CVE-2022-42919)."""
    version = sys.version_info[:3]
    return (3, 10, 9) <= version < (3, 11) or version >= (3, 11, 1)


def start_fork_server(python: str) -> None:
    """Start the fork server now if it is not running (`batch` does before its grading threads start)."""
    context = multiprocessing.get_context("forkserver")
    with _TURNS:
        context.set_executable(python)
        context.set_forkserver_preload(list(PRELOAD))
        multiprocessing.forkserver.ensure_running()


class ForkedGrade:
    """A grade forked by the fork server, with the part of `subprocess.Popen` that `batch` uses. It holds the
    write end of the grade's lifeline: closed when this process dies, which the grade then follows at once."""

    def __init__(self, process: multiprocessing.process.BaseProcess, lifeline: int) -> None:
        self._process = process
        self._lifeline = lifeline
        self._lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> int:
        if not multiprocessing.connection.wait([self._process.sentinel], timeout):
            raise subprocess.TimeoutExpired("grade", timeout or 0.0)
        with _TURNS:
            self._process.join()
        self._release()
        return self._process.exitcode  # type: ignore[return-value]

    def kill(self) -> None:
        self._release()  # the lifeline alone kills it; SIGKILL too, for a grade stuck before its watcher started
        with _TURNS:
            if self._process.exitcode is None:
                self._process.kill()

    def _release(self) -> None:
        with self._lock:
            if self._lifeline >= 0:
                os.close(self._lifeline)
                self._lifeline = -1


def start_forked_grade(
    python: str, argv: Sequence[str], env: dict[str, str], log_path: Path, results_fd: int
) -> ForkedGrade:
    """Start `python -m autograder ARGV` (argv without the interpreter) as a fork of the fork server, with `env`
    as its whole environment, stdout and stderr into `log_path`, and `results_fd` as its results pipe."""
    start_fork_server(python)
    log_path.write_bytes(b"")  # there even if the child dies before it opens it
    results = Connection(os.dup(results_fd), readable=False)
    watched, lifeline = os.pipe()
    alive = Connection(watched, writable=False)
    try:
        process = multiprocessing.get_context("forkserver").Process(
            target=_grade, args=(list(argv), env, str(log_path), results, alive), name=f"grade {log_path.parent.name}"
        )
        with _TURNS:
            process.start()
    except BaseException:
        os.close(lifeline)
        raise
    finally:
        results.close()  # the child has its own copies of both pipes
        alive.close()
    return ForkedGrade(process, lifeline)


def _die_when_closed(fd: int) -> None:
    """Block until the batch closes the lifeline's other end (its grade object did, or the batch died); then die.
    The fork server is not the batch: PR_SET_PDEATHSIG follows the fork server, which outlives a killed batch by
    the seconds its own exit takes."""
    while os.read(fd, 1):
        continue
    os.kill(os.getpid(), signal.SIGKILL)


def _grade(argv: list[str], env: dict[str, str], log_path: str, results: Connection, alive: Connection) -> None:
    """In the forked child: become the `grade` process that `python -m autograder` would have started."""
    die_with_parent()
    watched = os.dup(alive.fileno())
    alive.close()
    threading.Thread(target=_die_when_closed, args=(watched,), name="lifeline", daemon=True).start()
    results_fd = os.dup(results.fileno())  # the results plugin closes it when it reports
    results.close()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(env)
    os.environ[RESULTS_FD_ENVIRONMENT] = str(results_fd)
    # `python -m` in the repository puts it first on the path; the fork server has the batch's folder there.
    if sys.path and Path(sys.path[0] or ".").resolve() == Path.cwd().resolve():
        sys.path[0] = str(REPO_ROOT)
    os.chdir(REPO_ROOT)
    sys.argv = [str(Path(sys.executable)), "-m", "autograder", *argv]

    import torch

    # The fork server ran single-threaded; this grade gets its share of the cores, as a fresh interpreter reads it.
    with contextlib.suppress(ValueError):
        torch.set_num_threads(max(1, int(env.get("OMP_NUM_THREADS", "").split(",")[0])))
    from autograder.cli import main

    sys.exit(main(argv))
