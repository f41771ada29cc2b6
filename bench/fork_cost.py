"""What 500 child processes cost a process that holds torch, torchvision and transformers (as the worker does):
fork then exec, against posix_spawn (vfork and exec).

The hostile fork-bomb case first forked; on CI's busy cores its load took longer than the load's limits, so the
timer and not the process limit stopped it. Forking copies the page tables of a large address space, and every
page the parent then writes is copied while a child has not yet exec'd.

    .venv/bin/python bench/fork_cost.py
"""

from __future__ import annotations

import os
import signal
import time

import torch  # noqa: F401 - held, as the worker holds it
import torchvision  # noqa: F401
import transformers  # noqa: F401

CHILDREN = 500


def start_children(spawn: bool) -> float:
    """Seconds to start CHILDREN `sleep` processes (then killed and reaped)."""
    children = []
    started = time.monotonic()
    for _ in range(CHILDREN):
        if spawn:
            children.append(os.posix_spawn("/bin/sleep", ["sleep", "60"], {}))
            continue
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/sleep", ["sleep", "60"])
            finally:
                os._exit(127)
        children.append(pid)
    took = time.monotonic() - started
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    return took


if __name__ == "__main__":
    forked, spawned = start_children(spawn=False), start_children(spawn=True)
    print(f"{CHILDREN} children: fork+exec {forked:.2f} s, posix_spawn {spawned:.2f} s (load {os.getloadavg()[0]:.1f})")
