"""`run_sandboxed`: run a command to completion in the sandbox and report what it did, for the tests.

The grader itself only starts persistent workers (`autograder.worker.sandbox.start_sandboxed`); this one-shot
runner takes the same setup path (`spawn.spawn`, the same limits, user, environment and private directory) and
the same capture, so the tests can check each guarantee on a short command."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.worker.confinement import Confinement
from autograder.worker.leftovers import remove_tree
from autograder.worker.limits import Limits, describe_exit, signal_name
from autograder.worker.sandbox import OutputCapture
from autograder.worker.spawn import (
    DRAIN_SECONDS,
    POLL_SECONDS,
    READ_CHUNK,
    has_exited,
    kill_everything,
    reap,
    spawn,
    usage_cpu_seconds,
    usage_max_rss_bytes,
)
from autograder.worker.users import SandboxUser

_WRITE_CHUNK = 64 * 1024


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed command did. returncode follows Popen: negative signal number when killed."""

    argv: tuple[str, ...]
    limits: Limits
    returncode: int
    signal_name: str | None
    timed_out: bool
    output_flooded: bool
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_flooded

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """One line saying why the command ended, for feedback shown to students."""
        return describe_exit(
            self.returncode, self.timed_out, self.output_flooded, self.limits, self.stderr, self.cpu_seconds
        )



def run_sandboxed(
    argv: list[str],
    limits: Limits,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin_bytes: bytes | None = None,
    user: SandboxUser | None = None,
    confinement: Confinement | None = None,
) -> SandboxResult:
    """Run argv to completion in the sandbox and report what happened; never raises for child failures.

    stdin is /dev/null unless stdin_bytes is given. Raises only for bad arguments or when the child
    cannot be started (e.g. FileNotFoundError for a missing program).
    """
    if stdin_bytes is not None and not isinstance(stdin_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"stdin_bytes must be bytes or None, got {type(stdin_bytes).__name__}")
    start = time.monotonic()
    proc, private = spawn(
        argv, limits, cwd=cwd, env=env, user=user, stdin_pipe=stdin_bytes is not None, confinement=confinement
    )
    captures = {proc.stdout: OutputCapture(limits.output_bytes), proc.stderr: OutputCapture(limits.output_bytes)}
    timed_out = flooded = False
    usage = None
    try:
        with selectors.DefaultSelector() as selector:
            for pipe in captures:
                selector.register(pipe, selectors.EVENT_READ)
            pending = memoryview(bytes(stdin_bytes)) if stdin_bytes is not None else memoryview(b"")
            if proc.stdin is not None:
                if pending:
                    os.set_blocking(proc.stdin.fileno(), False)
                    selector.register(proc.stdin, selectors.EVENT_WRITE)
                else:
                    proc.stdin.close()
            deadline = start + limits.wall_seconds
            while not has_exited(proc.pid):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _events in selector.select(min(remaining, POLL_SECONDS)):
                    if key.fileobj is proc.stdin:
                        pending = _write_some(selector, proc, pending)
                    else:
                        _read_some(selector, key.fileobj, captures)
                if sum(c.total for c in captures.values()) > limits.output_kill_bytes:
                    flooded = True
                    break
            kill_everything(proc.pid, user)
            usage = reap(proc)
            if proc.stdin is not None and not proc.stdin.closed:  # the child died before reading it all
                selector.unregister(proc.stdin)
                proc.stdin.close()
            _drain(selector, captures, time.monotonic() + DRAIN_SECONDS)
    finally:
        try:
            if proc.returncode is None:  # an exception interrupted the loop: never leave the child behind
                try:
                    kill_everything(proc.pid, user)
                finally:
                    reap(proc)
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            remove_tree(private)
    out, err = captures[proc.stdout], captures[proc.stderr]
    return SandboxResult(
        argv=tuple(argv),
        limits=limits,
        returncode=proc.returncode,
        signal_name=signal_name(proc.returncode),
        timed_out=timed_out,
        output_flooded=flooded,
        stdout=out.value(),
        stderr=err.value(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        wall_seconds=time.monotonic() - start,
        cpu_seconds=usage_cpu_seconds(usage),
        max_rss_bytes=usage_max_rss_bytes(usage),
    )


def _write_some(selector: selectors.BaseSelector, proc: subprocess.Popen[bytes], pending: memoryview) -> memoryview:
    assert proc.stdin is not None
    try:
        written = os.write(proc.stdin.fileno(), pending[:_WRITE_CHUNK])
    except BlockingIOError:
        written = 0
    except BrokenPipeError:  # the child stopped reading: the rest of the input is dropped
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(proc.stdin)
        proc.stdin.close()
    return pending


def _read_some(selector: selectors.BaseSelector, pipe: object, captures: dict[object, OutputCapture]) -> None:
    data = os.read(pipe.fileno(), READ_CHUNK)  # type: ignore[attr-defined]
    if data:
        captures[pipe].feed(data)
    else:
        selector.unregister(pipe)


def _drain(selector: selectors.BaseSelector, captures: dict[object, OutputCapture], deadline: float) -> None:
    """Read what the dead child left in the pipes until EOF, or until deadline when a daemon outside our
    reach still holds a write end."""
    while any(pipe in captures for pipe in (key.fileobj for key in selector.get_map().values())):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for key, _events in selector.select(remaining):
            if key.fileobj in captures:
                _read_some(selector, key.fileobj, captures)
