"""Counting the Python lines a student's function executes, for the "no Python loops" checks.

"No Python loops" means no loop over the data, and that is decided by behaviour (DESIGN.md section 2): the
suites run the student's function on a small and a large input and compare, line by line, how often each line
of the student's own code ran (`autograder.grading.loops` holds the rule). A loop or comprehension over a fixed
number of things (the tokenizer's keys, the k results) runs as often at both sizes; a loop over the images
runs once more per image.

Lines are counted with `sys.settrace`, on every Python version: its "line" event fires each time a loop
re-runs its line, a one-line comprehension included, which is exactly what is counted. (`sys.monitoring`, on
3.12+, fires LINE only when the line number changes, so a one-line comprehension would also need its JUMP
events mapped back to lines; settrace does that itself and keeps one tested code path.)
Only frames of student code (code objects compiled from files named "<cell N>") are traced, wherever they are
called from, so helpers the student wrote count and the grader's and torch's own Python lines do not.

This is an observation made in the student's interpreter, so the student's code can disturb it (see
`LineCounts.intact`); the suite treats a trace that lost its tracer, or never saw the function's own first
line, as a failed check rather than a loop-free one.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autograder.worker.errors import STUDENT_FILE_PREFIX


def entry_code(function: object) -> types.CodeType | None:
    """The code object of a student function or method, through decorators such as `@torch.no_grad()`
    (which keep the original in `__wrapped__`); None when it is not student code."""
    target = inspect.unwrap(getattr(function, "__func__", function)) if callable(function) else None
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType) and code.co_filename.startswith(STUDENT_FILE_PREFIX):
        return code
    return None


@dataclass
class LineCounts:
    """How often each line of student code ran during one call.

    `entry_lines`: line events inside the entry function's own code (at least one whenever it really ran and
    was traced); `intact`: the tracer was still installed when the call returned (student code that calls
    `sys.settrace(None)` turns it off)."""

    lines: dict[tuple[str, int], int] = field(default_factory=dict)
    entry_lines: int = 0
    intact: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "lines": [[filename, line, count] for (filename, line), count in sorted(self.lines.items())],
            "entry_lines": self.entry_lines,
            "intact": self.intact,
        }


def count_student_lines(call: Callable[[], Any], function: object) -> tuple[Any, LineCounts]:
    """`call()` with every line event of student code counted; the result and the counts. `function` is the
    student function the call runs (e.g. `type(model).forward` for `lambda: model(batch)`), whose own lines
    are counted apart. The previous trace function (a debugger's, coverage's) is put back afterwards."""
    counts = LineCounts()
    entry = entry_code(function)
    lines = counts.lines

    def local(frame: types.FrameType, event: str, arg: object) -> Callable[..., Any]:
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            lines[key] = lines.get(key, 0) + 1
            if frame.f_code is entry:
                counts.entry_lines += 1
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        return local if frame.f_code.co_filename.startswith(STUDENT_FILE_PREFIX) else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = call()
    finally:
        counts.intact = sys.gettrace() is tracer
        sys.settrace(previous)
    return result, counts
