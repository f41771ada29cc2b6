"""Cutting a long text or byte string in the middle: its start says what ran, its end holds a traceback's last line.

The one home of keep-head-and-tail: the worker's texts (`worker.protocol.truncate`), the sandbox's captured streams
(bytes, `worker.sandbox`) and the results file (`results.gradescope.clean_text`) all cut here; each chooses its
budget, how it shares it between head and tail, and the words of its marker."""

from __future__ import annotations

from typing import TypeVar

Text = TypeVar("Text", str, bytes)


def keep_ends(data: Text, head: int, tail: int, marker: Text) -> Text:
    """The first `head` and the last `tail` items of `data`, with `marker` between them."""
    return data[:head] + marker + data[len(data) - tail :]
