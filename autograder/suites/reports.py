"""The report answers students write in markdown cells: "method 1 accuracy: 0.32", "CLIP accuracy: 80%".

Shared by the 7.1.5 and 7.2.3 suites so that both read lines the same way. Only a line that *starts*
with the phrase is an answer (markdown decoration such as list markers, quotes, headings, emphasis or a
backtick before it is allowed): the problem statement mentions the form mid-line ("in the form
`CLIP accuracy: 0.80`"), and that must never be taken for the student's answer. The phrase is matched
without regard to case or spacing; the first number after it is the answer, a percentage when a "%"
follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DECORATION = r"[\s>#*_`+-]*(?:\d+[.)]\s+)?[\s*_`]*"
_NUMBER = re.compile(r"(?<![\w.])([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(%?)")


@dataclass(frozen=True)
class ReportLine:
    """One answer line: the line as written, and its number as a fraction (80% gives 0.8); `value` is None
    when the line holds no number. A number above 1 without "%" is kept as written."""

    line: str
    written: str | None
    value: float | None


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = phrase.rstrip(":").split()
    body = r"\s+".join(re.escape(word) for word in words)
    return re.compile(rf"^{_DECORATION}{body}[\s*_`]*:(?P<rest>.*)$", re.IGNORECASE)


def report_lines(text_cells: list[str], phrase: str) -> list[ReportLine]:
    """Every line of the markdown cells that starts with `phrase` ("CLIP accuracy:"), in notebook order."""
    pattern = _phrase_pattern(phrase)
    found = []
    for cell in text_cells:
        for line in cell.splitlines():
            match = pattern.match(line)
            if match is None:
                continue
            number = _NUMBER.search(match.group("rest"))
            if number is None:
                found.append(ReportLine(line.strip(), None, None))
                continue
            value = float(number.group(1))
            found.append(ReportLine(line.strip(), number.group(0).strip(), value / 100 if number.group(2) else value))
    return found


def reported(text_cells: list[str], phrase: str) -> ReportLine | None:
    """The answer for `phrase`: the last line with a number, else the last line without one (the template's
    empty answer line), else None when no line starts with the phrase."""
    lines = report_lines(text_cells, phrase)
    with_numbers = [line for line in lines if line.value is not None]
    if with_numbers:
        return with_numbers[-1]
    return lines[-1] if lines else None
