"""The report answers students write in markdown cells, read as a TA reads them.

Shared by the 7.1.5 and 7.2.3 suites. A *subject* is "method 1", "method 2", "method 3" or "CLIP". A method
is named `method 1`, `method1`, `Method I`, `Method #1`, optionally followed by a parenthesis
(`Method I (autoencoder)`); case and spacing never matter. An answer is, in a markdown cell:

1. a line that *starts* with the subject, then optionally words ending in "accuracy", then `:`, `=`, `≈` or
   "is", then the number: `method 1 accuracy: 0.32`, `CLIP linear probe accuracy = 80%`,
   `Method 2 (supervised) = 0.435`, `**Method I:** 31.9%`, `- Method III: 25.8 %`. Without the word
   "accuracy" the number must follow the separator at once (`Method I: frozen encoder, about 30%` is prose);
   with it, the first number after the separator is the answer;
2. a line that starts with "accuracy of" / "accuracy for" the subject: `Test accuracy of method 3: 0.26`;
3. the course's layout: a line that is only the subject (a heading `### CLIP`, `**Method I**`) followed, in
   the same cell and before the next heading or subject, by a line `accuracy: 0.80` (words may precede
   "accuracy": `test accuracy = 80%`);
4. a markdown table with a header cell mentioning "acc" (accuracy), one row per method, the method in the
   first cell (`Method I`, `Method I (autoencoder)`, `method 1`, or a bare `I` / `1` when the first header
   cell says "Method"), or transposed (a header cell per subject and a row whose first cell mentions
   "acc"). When several header cells mention accuracy, those that also say "test" win; a "%" in the
   header cell makes its numbers percentages.

List markers, quotes, headings, emphasis, backticks and `$...$` may surround the words and the number. A
number is a fraction, or a percentage when "%" (or LaTeX's `\\%`) follows it, with or without a space; a
number above 1 without "%" is kept as written, for the suites to reject as implausible.

Mid-line mentions never count: the problem statement (whose markdown cells are in every notebook) shows the
form inside a sentence ("in the form `CLIP accuracy: 0.80`"). Lines without a number (the template's empty
`method 1 accuracy:`) are kept so that a suite can say the answer is missing. Two *different* numbers for one
subject (a draft line and a table, say) are refused as ambiguous, naming both lines; the same number written
twice (0.32 and 32%) is not a conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

SUBJECTS = ("method 1", "method 2", "method 3", "CLIP")
_ROMAN = {"1": "i", "2": "ii", "3": "iii"}

_LEAD = r"^[\s>#*_`+-]*(?:\d+[.)]\s+)?[\s*_`]*"
_AROUND = r"[\s*_`$~≈]*"
_QUALIFIER = r"(?:\s*\([^()]*\))?"
_ACCURACY_WORDS = r"(?:[\w-]+\s+){0,3}?accuracy"
_SEPARATOR = r"(?::|=|≈|\bis\b)"
_NUMBER = re.compile(r"(?<![\w.])([-+]?(?:\d+(?:\.\d*)?|\.\d+))(\s*\\?%)?")
_HEADING = re.compile(r"^\s*#")
_TABLE_RULE = re.compile(r"^[\s|:-]+$")
_SAME = 1e-9

ACCEPTED_FORMS = (
    "a line starting with the method, e.g. `Method I accuracy: 0.32`, `method 1: 32%` or `**Method I:** 31.9%`; "
    "`accuracy of method 1: 0.32`; a heading `### Method I` followed by `accuracy: 0.32`; or a markdown table "
    "`| Method | Accuracy |` with a row per method (`| I | 0.32 |`)"
)
ACCEPTED_CLIP_FORMS = (
    "a line starting with CLIP, e.g. `CLIP accuracy: 0.80`, `CLIP linear probe accuracy = 80%` or "
    "`**CLIP:** 80%`; a heading `### CLIP` followed by `accuracy: 0.80`; or a table row `| CLIP | 0.80 |` under "
    "a header `| Model | Accuracy |`"
)


@dataclass(frozen=True)
class ReportLine:
    """One answer: the line (or table row) as written, and its number as a fraction (80% gives 0.8);
    `value` is None when the line holds no number."""

    line: str
    written: str | None
    value: float | None


class AmbiguousReport(ValueError):
    """Two different numbers were reported for one subject."""

    def __init__(self, subject: str, lines: list[ReportLine]) -> None:
        self.subject = subject
        self.lines = lines
        shown = "; ".join(f"`{line.line}` ({line.written})" for line in lines)
        super().__init__(f"{display_name(subject)} has {len(lines)} different numbers: {shown}. Keep only one")


def display_name(subject: str) -> str:
    """How the problem set names a subject: "Method I" for "method 1", "CLIP" for "CLIP"."""
    if subject.startswith("method "):
        return "Method " + _ROMAN[subject.split()[1]].upper()
    return subject


def _label(subject: str) -> str:
    """The regular expression of a subject's name (no anchors)."""
    if subject == "CLIP":
        return r"clip(?![\w-])"
    digit = subject.split()[1]
    return rf"method\s*#?\s*(?:{digit}|{_ROMAN[digit]})(?![\w]|\.\d)"


def _bare_label(subject: str) -> str:
    """A table's first cell may hold just `I` or `1` when its header column is named "Method"."""
    digit = subject.split()[1] if subject != "CLIP" else None
    return rf"(?:{digit}|{_ROMAN[digit]})(?![\w]|\.\d)" if digit else r"(?!)"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True)
class _Patterns:
    named: re.Pattern[str]  # form 1
    accuracy_of: re.Pattern[str]  # form 2
    heading: re.Pattern[str]  # form 3, the subject's own line
    cell: re.Pattern[str]  # a table's first cell
    bare_cell: re.Pattern[str]


@cache
def _patterns(subject: str) -> _Patterns:
    label = _label(subject)
    return _Patterns(
        named=_compile(
            rf"{_LEAD}{label}{_QUALIFIER}(?P<accuracy>\s+{_ACCURACY_WORDS}{_QUALIFIER})?{_AROUND}{_SEPARATOR}"
            r"(?P<rest>.*)$"
        ),
        accuracy_of=_compile(
            rf"{_LEAD}(?:[\w-]+\s+){{0,2}}?accuracy\s+(?:of|for)\s+(?:the\s+)?{label}{_QUALIFIER}{_AROUND}"
            rf"{_SEPARATOR}(?P<rest>.*)$"
        ),
        heading=_compile(rf"{_LEAD}{label}{_QUALIFIER}(?:\s+[a-z-]+){{0,4}}{_AROUND}:?{_AROUND}$"),
        cell=_compile(rf"^{_AROUND}{label}"),
        bare_cell=_compile(rf"^{_AROUND}{_bare_label(subject)}{_AROUND}{_QUALIFIER}{_AROUND}$"),
    )


_ACCURACY_LINE = _compile(rf"{_LEAD}{_ACCURACY_WORDS}{_QUALIFIER}{_AROUND}{_SEPARATOR}(?P<rest>.*)$")


def _number_in(text: str, *, at_start: bool = False, percent: bool = False) -> tuple[str, float] | None:
    """The first number of `text` (at its very start, decoration aside, when `at_start`) as written and as a
    fraction; `percent` reads a number without "%" as a percentage (a table header said "%")."""
    if at_start:
        prefix = re.match(_AROUND, text)
        text = text[prefix.end() :] if prefix else text
        found = _NUMBER.match(text)
    else:
        found = _NUMBER.search(text)
    if found is None:
        return None
    value = float(found.group(1))
    if found.group(2) or percent:
        value /= 100
    return found.group(0).strip(), value


def _line(text: str, number: tuple[str, float] | None) -> ReportLine:
    return ReportLine(text.strip(), *(number if number is not None else (None, None)))


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    if cells and not cells[0].strip():
        cells = cells[1:]
    if cells and not cells[-1].strip():
        cells = cells[:-1]
    return [cell.strip() for cell in cells]


def _accuracy_columns(header: list[str]) -> list[int]:
    columns = [index for index, cell in enumerate(header) if index and "acc" in cell.lower()]
    tested = [index for index in columns if "test" in header[index].lower()]
    return tested or columns


def _table_answers(rows: list[str], subject: str, patterns: _Patterns) -> list[ReportLine]:
    """Answers in one markdown table (its lines, header first)."""
    header = _split_row(rows[0])
    body = [row for row in rows[1:] if not _TABLE_RULE.match(row)]
    found: list[ReportLine] = []
    columns = _accuracy_columns(header)
    if columns:
        bare_allowed = bool(header) and "method" in header[0].lower()
        for row in body:
            cells = _split_row(row)
            if not cells:
                continue
            label = cells[0]
            if not (patterns.cell.match(label) or (bare_allowed and patterns.bare_cell.match(label))):
                continue
            for column in columns:
                if column < len(cells):
                    found.append(_line(row, _number_in(cells[column], percent="%" in header[column])))
        return found
    subject_columns = [index for index, cell in enumerate(header) if index and patterns.cell.match(cell)]
    for row in body:
        cells = _split_row(row)
        if cells and "acc" in cells[0].lower():
            for column in subject_columns:
                if column < len(cells):
                    found.append(_line(row, _number_in(cells[column], percent="%" in cells[0])))
    return found


def _other_subject_starts(line: str, subject: str) -> bool:
    return any(
        _patterns(other).heading.match(line) or _patterns(other).named.match(line)
        for other in SUBJECTS
        if other != subject
    )


def _cell_answers(cell: str, subject: str, patterns: _Patterns) -> list[ReportLine]:
    found: list[ReportLine] = []
    lines = cell.splitlines()
    under_heading = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.lstrip().startswith("|"):
            end = index
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            found.extend(_table_answers(lines[index:end], subject, patterns))
            under_heading = False
            index = end
            continue
        index += 1
        match = patterns.named.match(line) or patterns.accuracy_of.match(line)
        if match is not None:
            loose = match.re is patterns.accuracy_of or bool(match.groupdict().get("accuracy"))
            number = _number_in(match.group("rest"), at_start=not loose)
            if number is not None or loose:
                found.append(_line(line, number))
                under_heading = False
                continue
        if patterns.heading.match(line):
            under_heading = True
            continue
        if _HEADING.match(line) or _other_subject_starts(line, subject):
            under_heading = False
            continue
        if under_heading:
            accuracy = _ACCURACY_LINE.match(line)
            if accuracy is not None:
                found.append(_line(line, _number_in(accuracy.group("rest"))))
    return found


def report_lines(text_cells: list[str], subject: str) -> list[ReportLine]:
    """Every answer for `subject` ("method 1", ..., "CLIP") in the markdown cells, in notebook order, with or
    without a number."""
    if subject not in SUBJECTS:
        raise ValueError(f"subject must be one of {SUBJECTS}, got {subject!r}")
    patterns = _patterns(subject)
    return [line for cell in text_cells for line in _cell_answers(cell, subject, patterns)]


def reported(text_cells: list[str], subject: str) -> ReportLine | None:
    """The answer for `subject`: the line with its number (the first, when the same number is written more
    than once), else the last answer line without one (the template's empty line), else None. Raises
    AmbiguousReport when the notebook gives the subject different numbers."""
    lines = report_lines(text_cells, subject)
    with_numbers = [line for line in lines if line.value is not None]
    if not with_numbers:
        return lines[-1] if lines else None
    distinct: list[ReportLine] = []
    for line in with_numbers:
        if all(abs(line.value - seen.value) > _SAME for seen in distinct):  # type: ignore[operator]
            distinct.append(line)
    if len(distinct) > 1:
        raise AmbiguousReport(subject, distinct)
    return with_numbers[0]
