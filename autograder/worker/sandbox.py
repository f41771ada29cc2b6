"""The one primitive every worker goes through: a long-lived child running untrusted student code under limits.

`start_sandboxed` starts it (through `spawn.spawn`: limits, environment, user, private directory, namespaces)
and returns a `SandboxProcess` handle with stdin/stdout pipes for the caller's request/response protocol. Its
stderr is read concurrently and capped (`OutputCapture`): the first 3/4 and the last 1/4 of `output_bytes` are
kept (the tail is where a traceback is), the middle is replaced by a "[... N bytes truncated]" marker. Reading
continues past the cap so the child never blocks on a full pipe; a child that writes more than
`output_kill_bytes` in total is killed, so a print loop cannot keep the grader busy until the timeout.

The pieces: `limits` (what a child may use, and which limit ended it), `users` (the sandbox account and killing
everything it runs), `spawn` (starting and ending a child), `confinement` (the namespaces).
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from autograder.truncation import keep_ends
from autograder.worker.confinement import Confinement
from autograder.worker.leftovers import remove_tree
from autograder.worker.limits import Limits, describe_exit
from autograder.worker.spawn import (
    DRAIN_SECONDS,
    POLL_SECONDS,
    READ_CHUNK,
    has_exited,
    kill_everything,
    reap,
    spawn,
    usage_cpu_seconds,
)
from autograder.worker.users import SandboxUser, kill_user_processes


class OutputCapture:
    """Keeps the head and the tail of a stream within a byte budget and counts what it dropped."""

    def __init__(self, cap: int) -> None:
        self._tail_cap = cap // 4
        self._head_cap = cap - self._tail_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data and self._tail_cap:
            self._tail += data[-self._tail_cap :]
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._tail)

    def value(self) -> bytes:
        if not self.truncated:
            return bytes(self._head + self._tail)
        dropped = self.total - len(self._head) - len(self._tail)
        marker = f"\n[... {dropped} bytes truncated]\n".encode()
        return keep_ends(bytes(self._head + self._tail), len(self._head), len(self._tail), marker)


class SandboxProcess:
    """A long-lived sandboxed child (a persistent worker) with pipes for a request/response protocol.

    stdin and stdout are unbuffered binary pipes (so select() on stdout tells the truth); stdout carries
    the protocol and is not captured or capped here. stderr is drained by a background thread into a
    capped buffer (`stderr_bytes()`), so the child never blocks on it; more than
    `limits.output_kill_bytes` of stderr kills the child. `limits.wall_seconds` bounds the child's whole
    lifetime. Once the child is seen to exit (its stderr closes, or `poll()`/`wait()` notice), or `kill()` is
    called, its process group and (with a dedicated user) every process of that user are killed. Use it as
    a context manager, or call `close()`.
    """

    def __init__(self, proc: subprocess.Popen[bytes], private: Path, limits: Limits, user: SandboxUser | None) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self.pid: int = proc.pid
        self.stdin: BinaryIO = proc.stdin  # type: ignore[assignment]
        self.stdout: BinaryIO = proc.stdout  # type: ignore[assignment]
        self.workdir = private
        self.limits = limits
        self.user = user
        self._started = time.monotonic()
        self._ended: float | None = None
        self._usage: resource.struct_rusage | None = None
        self._timed_out = False
        self._flooded = False
        self._closed = False
        self._lock = threading.Lock()  # serialises reaping and killing across the caller and our threads
        self._stderr = OutputCapture(limits.output_bytes)
        self._stderr_lock = threading.Lock()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"sandbox-stderr-{proc.pid}", daemon=True
        )
        self._watchdog = threading.Timer(limits.wall_seconds, self._on_timeout)
        self._watchdog.daemon = True
        self._stderr_thread.start()
        self._watchdog.start()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    @property
    def output_flooded(self) -> bool:
        return self._flooded

    @property
    def cpu_seconds(self) -> float:
        return usage_cpu_seconds(self._usage)

    @property
    def wall_seconds(self) -> float:
        return (self._ended if self._ended is not None else time.monotonic()) - self._started

    def stderr_bytes(self) -> bytes:
        """What the child wrote to stderr so far, capped to `limits.output_bytes` (`OutputCapture`)."""
        with self._stderr_lock:
            return self._stderr.value()

    def poll(self) -> int | None:
        """The return code once the child has exited (its leftovers are then killed), else None."""
        with self._lock:
            if self._proc.returncode is None and has_exited(self.pid):
                self._finish_locked()
            return self._proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit; raises subprocess.TimeoutExpired after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self._proc.args, timeout)  # type: ignore[arg-type]
            time.sleep(POLL_SECONDS)
        return code

    def kill(self) -> int:
        """SIGKILL the process group (and the sandbox user's processes), reap the child; idempotent."""
        with self._lock:
            if self._proc.returncode is None:
                self._finish_locked()
            elif self.user is not None:
                kill_user_processes(self.user)
            return self._proc.returncode  # type: ignore[return-value]

    def close(self) -> None:
        """Kill the child if needed, close the pipes and remove the private directory."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        self._stderr_thread.join(DRAIN_SECONDS)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        # Closing stderr under a thread still blocked in read() could let it read a reused descriptor;
        # that only happens when a daemon beyond our reach holds the pipe, and the thread then owns it.
        if not self._stderr_thread.is_alive() and self._proc.stderr is not None:
            self._proc.stderr.close()
        remove_tree(self.workdir)

    def describe(self) -> str:
        """One line saying why the worker ended, or that it is still running."""
        code = self.poll()
        if code is None:
            return f"still running after {self.wall_seconds:.1f} s"
        return describe_exit(code, self._timed_out, self._flooded, self.limits, self.stderr_bytes(), self.cpu_seconds)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _finish_locked(self) -> None:
        kill_everything(self.pid, self.user)
        self._usage = reap(self._proc)
        self._ended = time.monotonic()
        self._watchdog.cancel()

    def _on_timeout(self) -> None:
        with self._lock:
            if self._proc.returncode is None:
                self._timed_out = not has_exited(self.pid)  # it may have exited unobserved
                self._finish_locked()

    def _drain_stderr(self) -> None:
        fd = self._proc.stderr.fileno()  # type: ignore[union-attr]
        while data := os.read(fd, READ_CHUNK):
            with self._stderr_lock:
                self._stderr.feed(data)
                flood = self._stderr.total > self.limits.output_kill_bytes and not self._flooded
            if flood:
                with self._lock:
                    if self._proc.returncode is None:
                        self._flooded = True
                        self._finish_locked()
        # EOF: usually the child died; clean up its leftovers now rather than at the next poll().
        self.poll()


def start_sandboxed(
    argv: list[str],
    limits: Limits,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: SandboxUser | None = None,
    confinement: Confinement | None = None,
) -> SandboxProcess:
    """Start a long-lived sandboxed child (a persistent worker) and return its handle.

    Limits, environment, user switch and private directory as `spawn.spawn` gives them; with `confinement`,
    inside namespaces that show it only the allowed paths (`autograder.worker.confinement`).
    """
    proc, private = spawn(argv, limits, cwd=cwd, env=env, user=user, stdin_pipe=True, confinement=confinement)
    return SandboxProcess(proc, private, limits, user)
