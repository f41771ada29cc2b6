"""`check --watch`: check a notebook, then again each time it is saved, with a worker started ahead.

A one-shot `check` cannot answer faster than a new worker imports torch, torchvision and transformers (about
9 s on 2 cores). While the student edits, the next check's worker is begun already (`Worker.begin` with no
submission: its launch loads only the provided code), and this process keeps its own imports, so a check after
a save costs only loading the student's parts and the public tests' calls. Each worker still serves one check
only and is discarded with it: nothing of one version of the notebook reaches the check of the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from autograder.worker.client import Worker

POLL_SECONDS = 0.5
SETTLE_SECONDS = 0.3  # a save must read the same twice this far apart: an editor may still be writing it


def watch(
    path: Path,
    check: Callable[[Worker | None], int],
    spare: Callable[[], Worker],
    *,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Run `check` on `path` now and after every change of its contents, each time with the worker `spare()`
    began after the previous check (none for the first, whose check may still have to prepare the profile),
    until Ctrl-C; returns 0 then."""
    seen: bytes | None = None
    stamp: tuple[int, int] | None = None
    waiting: Worker | None = None
    try:
        while True:
            now = _stamp(path)
            contents = _settled(path) if now != stamp else None
            if contents is not None:
                stamp = now
            if contents is not None and contents != seen:
                seen = contents
                print(f"==== checking {path} ({datetime.now():%H:%M:%S}) ====", flush=True)
                ready, waiting = waiting, None
                check(ready)
                waiting = spare()
                print(f"==== watching {path}: save it to check again (Ctrl-C to stop) ====", flush=True)
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        print("stopped watching", flush=True)
        return 0
    finally:
        if waiting is not None:
            waiting.close()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _settled(path: Path) -> bytes | None:
    """The file's contents once two reads agree, else None (missing, unreadable, or being written)."""
    try:
        first = path.read_bytes()
        time.sleep(SETTLE_SECONDS)
        return first if path.read_bytes() == first else None
    except OSError:
        return None
