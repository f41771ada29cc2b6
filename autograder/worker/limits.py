"""The resource limits of a sandboxed child, how they become rlimits, and how a child's end reads against them.

`Limits` is what a caller asks for (`profiles/timing.py` derives the worker's from a profile's budgets); `rlimits`
turns it into the (resource, soft, hard) triples the child sets before `exec`; `describe_exit` says in one line,
for feedback shown to students, which limit (if any) ended the child."""

from __future__ import annotations

import resource
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.worker.users import SandboxUser

MiB = 1024**2
GiB = 1024**3

_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"can't allocate memory", b"Cannot allocate memory")
_FILE_SIZE_MARKER = b"File too large"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command (or one persistent worker's whole life).

    Defaults suit grading one PS7 submission on a CPU:
    - wall_seconds (300): wall-clock budget; the process group is SIGKILLed when it runs out. For a
      persistent worker it bounds the worker's lifetime; per-request timeouts are the protocol's job.
    - cpu_seconds (1200): RLIMIT_CPU, summed over all threads (torch uses one per core), so it is
      four busy cores for the whole wall budget. SIGXCPU at the limit, SIGKILL one second later. The
      kernel enforces it even if the grader dies, which the wall clock cannot promise.
    - memory_bytes (4 GiB): RLIMIT_DATA, the child's private writable memory (heap and anonymous mappings:
      every tensor and array), counted when it is reserved, so an allocation past it fails (Python raises
      MemoryError, torch "can't allocate memory") even before its pages are touched. Not the address space
      (`import torch` alone maps 3.1 GiB, mostly shared libraries) and not resident memory. Measured peaks of a
      correct worker: 1.3 GiB grading the synthetic profile, 2.0 GiB for DistilBERT and a ResNet50 training on
      64x64 images, 2.5 GiB grading at real sizes (BENCHMARKS.md). A CUDA context's reservations (no access
      rights) and its device mappings (shared) are not private writable memory, so the limit leaves CUDA start-up
      alone, as RLIMIT_AS did not (`bench/gpu.sh` checks it on a GPU). None disables it.
    - file_bytes (512 MiB): RLIMIT_FSIZE, the largest file the child may write (checkpoints are smaller).
    - processes (512): RLIMIT_NPROC. The kernel counts every process and thread of the *real user*, not
      of this child, so it is applied only when the child runs as a dedicated sandbox user; applied to
      a student's own account it would count their desktop too. Torch threads count against it.
    - open_files (4096): RLIMIT_NOFILE (a DataLoader sharing tensors through file descriptors needs many).
    - output_bytes (1 MiB): stdout and stderr are each capped to this many captured bytes.
    - output_kill_bytes (64 MiB): the child is killed once stdout+stderr exceed this in total.
    Core dumps are always disabled (RLIMIT_CORE = 0). Limits above the grader's own hard limits are
    lowered to them (an unprivileged process cannot raise a hard limit).
    """

    wall_seconds: float = 300.0
    cpu_seconds: int = 1200
    memory_bytes: int | None = 4 * GiB
    file_bytes: int = 512 * MiB
    processes: int = 512
    open_files: int = 4096
    output_bytes: int = 1 * MiB
    output_kill_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        wall = self.wall_seconds
        if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not wall > 0 or wall == float("inf"):
            raise ValueError(f"Limits.wall_seconds must be a positive number, got {self.wall_seconds!r}")
        for name in ("cpu_seconds", "file_bytes", "processes", "open_files", "output_bytes", "output_kill_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if self.memory_bytes is not None and (
            not isinstance(self.memory_bytes, int) or isinstance(self.memory_bytes, bool) or self.memory_bytes <= 0
        ):
            raise ValueError(f"Limits.memory_bytes must be a positive integer or None, got {self.memory_bytes!r}")
        if self.output_kill_bytes < self.output_bytes:
            raise ValueError(
                f"Limits.output_kill_bytes ({self.output_kill_bytes}) must be at least "
                f"Limits.output_bytes ({self.output_bytes})"
            )


def rlimits(limits: Limits, user: SandboxUser | None) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) triples, computed in the parent so the child only calls setrlimit."""
    wanted = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
    ]
    if limits.memory_bytes is not None:
        wanted.append((resource.RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes))
    if user is not None:
        wanted.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    result = []
    for res, soft, hard in wanted:
        current_hard = resource.getrlimit(res)[1]
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
        result.append((res, min(soft, hard), hard))
    return result


def signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def describe_exit(
    returncode: int, timed_out: bool, flooded: bool, limits: Limits, stderr: bytes, cpu_seconds: float
) -> str:
    if timed_out:
        return f"killed after {limits.wall_seconds:g} s wall-clock timeout"
    if flooded:
        return f"killed after writing more than {_fmt_bytes(limits.output_kill_bytes)} of output"
    name = signal_name(returncode)
    if name is not None:
        number = -returncode
        reason = signal.strsignal(number) if name[0] == "S" else None
        ending = f"killed by {name}" + (f" ({reason[0].lower()}{reason[1:]})" if reason else "")
    else:
        number = 0
        ending = f"exited with code {returncode}" if returncode else "exited normally (code 0)"
    if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_seconds >= limits.cpu_seconds):
        return f"exceeded CPU-time limit of {limits.cpu_seconds} s ({ending})"
    if returncode != 0 and limits.memory_bytes is not None and any(m in stderr for m in _MEMORY_MARKERS):
        return f"exceeded memory limit of {_fmt_bytes(limits.memory_bytes)} ({ending})"
    if number == signal.SIGXFSZ or (returncode != 0 and _FILE_SIZE_MARKER in stderr):
        return f"exceeded file-size limit of {_fmt_bytes(limits.file_bytes)} ({ending})"
    if number == signal.SIGKILL:
        return "killed by SIGKILL from outside the sandbox (often the system's out-of-memory killer)"
    return ending

