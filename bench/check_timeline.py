"""The timeline of one `check`: when this (trusted) process has imported pytest and torch, when the worker begins
and has loaded, when the first probe call is answered, when the check ends. pytest captures the standard streams
during tests, so the marks go to a file.

    PYTHONPATH=. PS7_CACHE=... .venv/bin/python bench/check_timeline.py reference/ps7_solution.ipynb [--only 7.1]
    cat check-timeline.log                      # or the file named by PS7_TIMELINE
"""

import builtins
import os
import sys
import time

STARTED = time.monotonic()
LOG = open(os.environ.get("PS7_TIMELINE", "check-timeline.log"), "a")  # noqa: SIM115 - open for the whole run


def mark(what: str) -> None:
    LOG.write(f"[timeline] {time.monotonic() - STARTED:6.2f}s {what}\n")
    LOG.flush()


_real_import = builtins.__import__
_seen: set[str] = set()


def _tracking_import(name, *args, **kwargs):
    module = _real_import(name, *args, **kwargs)
    loaded = sys.modules.get(name)
    spec = getattr(loaded, "__spec__", None)
    finished = spec is not None and not getattr(spec, "_initializing", False)
    if name in ("torch", "pytest") and name not in _seen and finished:
        _seen.add(name)
        mark(f"{name} imported")
    return module


builtins.__import__ = _tracking_import

from autograder.worker import client  # noqa: E402 - after the import hook

_begin, _finish_load, _call = client.Worker.begin, client.Worker._finish_load, client.Worker.call
_calls = [0]


def begin(self):
    mark("worker begins")
    _begin(self)


def finish_load(self):
    loaded = _finish_load(self)
    mark("worker loaded")
    return loaded


def call(self, *args, **kwargs):
    answer = _call(self, *args, **kwargs)
    _calls[0] += 1
    if _calls[0] == 1:
        mark("first call answered")
    return answer


client.Worker.begin, client.Worker._finish_load, client.Worker.call = begin, finish_load, call

from autograder.cli import main  # noqa: E402

code = main(["check", *sys.argv[1:]])
mark(f"check done ({_calls[0]} calls)")
sys.exit(code)
