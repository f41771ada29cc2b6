"""The trusted grader's own memory limit: a soft RLIMIT_DATA for the duration of one grade.

Whatever the worker sends is size-checked, but the trusted side still computes with it (probes, features);
an allocation that a missed check would let grow without bound fails with MemoryError in the test that made
it, instead of taking the machine (and the results file) down. Soft only, and only while grading: the
sandboxed worker sets its own limit (`worker.limits.Limits.memory_bytes`), which it can do only while the hard
limit stays as it was, and the limit is lifted again when the grade ends (tests grade in their own process).
Private writable memory, as the worker's: neither the address space (`import torch` alone maps about 3 GiB of
libraries; a CUDA context reserves far more) nor resident memory.
"""

from __future__ import annotations

import os
import resource

GiB = 1024**3
MEMORY_ENVIRONMENT = "PS7_GRADER_MEMORY_BYTES"
DEFAULT_MEMORY_BYTES = 4 * GiB  # a reference grade peaks at 1.4 GiB (synthetic), 2.1 GiB (real sizes)


def grader_memory_bytes() -> int | None:
    """The limit for this grade: `PS7_GRADER_MEMORY_BYTES` (0: none), else the default."""
    named = os.environ.get(MEMORY_ENVIRONMENT)
    if not named:
        return DEFAULT_MEMORY_BYTES
    try:
        value = int(named)
    except ValueError:
        raise ValueError(f"{MEMORY_ENVIRONMENT}={named!r} is not a number of bytes") from None
    return value or None


class MemoryLimit:
    """`apply()` lowers this process's soft RLIMIT_DATA to `limit_bytes` (never raises it); `restore()` puts the
    previous soft limit back."""

    def __init__(self, limit_bytes: int | None) -> None:
        self.limit_bytes = limit_bytes
        self._previous: int | None = None

    def apply(self) -> None:
        if self.limit_bytes is None or self._previous is not None:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        wanted = self.limit_bytes if hard == resource.RLIM_INFINITY else min(self.limit_bytes, hard)
        if soft == resource.RLIM_INFINITY or wanted < soft:
            resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
            self._previous = soft

    def restore(self) -> None:
        if self._previous is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (self._previous, resource.getrlimit(resource.RLIMIT_DATA)[1]))
            self._previous = None
