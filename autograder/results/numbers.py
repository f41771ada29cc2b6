"""Test numbers: "7.2.2.3" is test 3 of component 7.2.2 of part 7.2 (the `number` marker, Gradescope's `number`).

The one place that says which component a test belongs to; the grading plugin, `batch`'s score columns and the
corpus all ask here."""

from __future__ import annotations

import re

_COMPONENT = re.compile(r"\d+\.\d+\.\d+")


def component_of(text: str) -> str | None:
    """The component "7.1.1" that a test number "7.1.1.2" (or a test name "7.1.1 Encoder: ...") begins with,
    else None."""
    match = _COMPONENT.match(text)
    return match.group() if match else None


def within(number: str, prefix: str) -> bool:
    """Whether test number `number` is `prefix` or lies under it: "7.1.3.2" is within "7.1.3" and within "7.1"."""
    return number == prefix or number.startswith(prefix + ".")
