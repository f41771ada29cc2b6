"""Read a submission file into its code cells, as text, without running anything.

Notebooks are parsed as JSON and their outputs are thrown away before nbformat sees them, so a
notebook bloated by plots still loads quickly; only the code cells' sources are kept.
"""

from __future__ import annotations

import io
import json
import os
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# The kinds of file graded, in order of preference: a submission folder's notebook wins over its .py files.
SUBMISSION_SUFFIXES = (".ipynb", ".py")
ACCEPTED_KINDS = (
    "a Jupyter/Colab notebook (.ipynb) or a Python file (.py, plain or jupytext percent format with "
    "'# %%' cells)"
)
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024

_DOWNLOAD_HINT = "In Colab use File > Download > Download .ipynb and submit that file."
# Cell markers of jupytext/VS Code ("# %%", "#%%") and of `jupyter nbconvert --to script` ("# In[3]:").
_PERCENT_MARKER = re.compile(r"^#\s?%%(?P<rest>(?:\s.*)?)$")
_NBCONVERT_MARKER = re.compile(r"^# In\[(?P<count>[\d ]*)\]:\s*$")
_MAX_COUNT_DIGITS = 9  # a longer "execution count" is not one (and int() of thousands of digits raises)
_NON_CODE_CELL = re.compile(r"\[(?:markdown|md|raw)\]")
_CODING_LINE = re.compile(r"^#.*coding[:=]")


class IngestError(Exception):
    """The submission cannot be read at all; the message says what to fix and names the file."""


@dataclass(frozen=True, order=True)
class CellRef:
    """A cell as the student sees it, for every message that points into the notebook: its position (1-based,
    every cell counted, markdown and raw ones too, as Jupyter's table of contents and Colab number them) and
    the execution count of its last run when the notebook has one (`In [7]`). Equal positions are the same
    cell; the count is only shown."""

    position: int
    execution_count: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        """ "cell 12 (In [7])", or "cell 12" for a cell never run."""
        ran = f" (In [{self.execution_count}])" if self.execution_count is not None else ""
        return f"cell {self.position}{ran}"

    @property
    def filename(self) -> str:
        """The name the worker compiles the cell's code under, so that tracebacks name it as the student sees
        it: "<cell 12 (In [7])>" (starts with the worker's STUDENT_FILE_PREFIX, "<cell")."""
        return f"<{self}>"


@dataclass(frozen=True)
class SourceCell:
    """One cell. `file_line` is the 1-based line of the cell's first line in a .py file (None in a
    notebook), so that messages can point into the file the student edits. `kind` "text" is a markdown
    cell (in a .py file: its comment lines), kept only for the report answers. `position` is the cell's place
    among all the notebook's cells (1-based) and `execution_count` its `In [N]`, when the file says so."""

    source: str
    file_line: int | None = None
    kind: str = "code"
    position: int | None = None
    execution_count: int | None = None


def read_cells(
    path: str | os.PathLike[str], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, include_text: bool = False
) -> list[SourceCell]:
    """Return the code cells of a notebook or Python file, in order (with the markdown cells too when
    `include_text`); raise IngestError if unreadable."""
    path = Path(path)
    name = path.name
    if path.is_symlink():  # the grader may run as root: a link could make it read any file for the student
        raise IngestError(f"{name} is a symbolic link; submit the file itself ({ACCEPTED_KINDS}).")
    if not path.is_file():
        raise IngestError(f"{name}: no such file (expected {ACCEPTED_KINDS}).")
    suffix = path.suffix.lower()
    if suffix not in SUBMISSION_SUFFIXES:
        raise IngestError(f"{name}: files of this kind are not accepted; submit {ACCEPTED_KINDS}.")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{name} is empty (0 bytes). {_DOWNLOAD_HINT if suffix == '.ipynb' else ''}".rstrip())
    if size > max_file_bytes:
        raise IngestError(
            f"{name} is {size / 2**20:.0f} MB; files over {max_file_bytes / 2**20:.0f} MB are not accepted. "
            "Clear the outputs (Edit > Clear all outputs), save, and submit again."
        )
    data = path.read_bytes()
    if suffix == ".ipynb":
        cells = _notebook_cells(name, data)
    else:
        cells = _python_cells(name, data)
    return cells if include_text else [cell for cell in cells if cell.kind == "code"]


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _notebook_cells(name: str, data: bytes) -> list[SourceCell]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{name} is not a notebook: it is not UTF-8 text (undecodable byte at offset {exc.start}). "
            f"{_DOWNLOAD_HINT}"
        ) from None
    del data
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{name} is not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
            f"the file may be truncated or damaged. {_DOWNLOAD_HINT}"
        ) from None
    except RecursionError:
        raise IngestError(f"{name} is not a notebook: its JSON is nested too deeply. {_DOWNLOAD_HINT}") from None
    except ValueError as exc:  # a number of thousands of digits (an execution count, say) exceeds int()'s limit
        raise IngestError(f"{name} is a damaged notebook ({exc}). {_DOWNLOAD_HINT}") from None
    del text
    if not isinstance(raw, dict):
        raise IngestError(
            f"{name} is not a notebook: it holds a JSON {type(raw).__name__}, not an object with 'cells'. "
            f"{_DOWNLOAD_HINT}"
        )
    major = raw.get("nbformat")
    if major is None or "cells" not in raw and "worksheets" not in raw:
        raise IngestError(f"{name} is JSON but not a Jupyter notebook (no 'nbformat'/'cells'). {_DOWNLOAD_HINT}")
    if major != 4:
        if isinstance(major, int) and not isinstance(major, bool) and major < 4:
            raise IngestError(
                f"{name} uses the old notebook format {major}; only format 4 is accepted. Open it in Jupyter "
                "or Colab, save it (that converts it to format 4) and submit again."
            )
        raise IngestError(f"{name} uses notebook format {major!r}; only format 4 is accepted. {_DOWNLOAD_HINT}")
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise IngestError(f"{name} is a damaged notebook: 'cells' is not a list. {_DOWNLOAD_HINT}")
    code_cells = []
    # (kind, position, execution count, text); code cells' texts come from nbformat's reading below
    kept: list[tuple[str, int, int | None, str]] = []
    for position, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise IngestError(f"{name} is a damaged notebook: cell {position} is not an object. {_DOWNLOAD_HINT}")
        source = cell.get("source", "")
        readable = isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)
        if cell.get("cell_type") != "code":
            if cell.get("cell_type") == "markdown" and readable:
                kept.append(("text", position, None, source if isinstance(source, str) else "".join(source)))
            continue
        if not readable:
            raise IngestError(
                f"{name} is a damaged notebook: cell {position} has no readable source. {_DOWNLOAD_HINT}"
            )
        kept.append(("code", position, _execution_count(cell.get("execution_count")), ""))
        # Only what grading reads survives: outputs, attachments and metadata can be huge and are never used.
        code_cells.append(
            {"cell_type": "code", "id": f"cell-{len(code_cells) + 1}", "metadata": {}, "source": source,
             "outputs": [], "execution_count": None}
        )
    del raw, cells
    minimal = {"nbformat": 4, "nbformat_minor": nbformat.v4.nbformat_minor, "metadata": {}, "cells": code_cells}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # nbformat joins list-of-lines sources and checks the v4 schema of what we kept.
            notebook = nbformat.reads(json.dumps(minimal), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for malformed content
        raise IngestError(f"{name} is a damaged notebook ({exc}). {_DOWNLOAD_HINT}") from None
    if not notebook.cells:
        raise IngestError(f"{name} has no code cells; did you submit the right notebook? {_DOWNLOAD_HINT}")
    code = iter(notebook.cells)
    return [
        SourceCell(_normalise_newlines(next(code).source if kind == "code" else text), None, kind, position, count)
        for kind, position, count, text in kept
    ]


def _execution_count(value: object) -> int | None:
    """The `In [N]` of a code cell: a positive int, or None (never run, or a damaged value)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _python_cells(name: str, data: bytes) -> list[SourceCell]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise IngestError(f"{name} is not readable Python text ({exc}); save it as UTF-8 and submit again.") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _normalise_newlines(text).split("\n")
    cells: list[_PyCell] = [_PyCell(0, True, [])]
    for index, line in enumerate(lines):
        percent = _PERCENT_MARKER.match(line)
        nbconvert = _NBCONVERT_MARKER.match(line)
        if percent or nbconvert:
            is_code = not (percent and _NON_CODE_CELL.search(percent.group("rest")))
            digits = nbconvert.group("count").strip() if nbconvert else ""
            count = _execution_count(int(digits)) if digits.isdigit() and len(digits) <= _MAX_COUNT_DIGITS else None
            cells.append(_PyCell(index + 1, is_code, [], count))
        else:
            cells[-1].body.append(line)
    if any(_NBCONVERT_MARKER.match(line) for line in lines):
        cells = [part for cell in cells for part in _nbconvert_markdown(cell)]
    # Text before the first marker is a jupytext header of comments; it is a cell only if it holds code.
    elif len(cells) > 1 and not _has_code(cells[0].body):
        cells = cells[1:]
    if not any(_has_code(cell.body) for cell in cells if cell.is_code):
        raise IngestError(f"{name} contains no Python code.")
    return [
        SourceCell(
            "\n".join(cell.body) if cell.is_code else _comment_text(cell.body),
            cell.start + 1,
            "code" if cell.is_code else "text",
            position,
            cell.execution_count,
        )
        for position, cell in enumerate(cells, start=1)
    ]


@dataclass
class _PyCell:
    """A cell of a .py file while it is being split: the index of its first line, its kind and lines, and the
    execution count its nbconvert marker (`# In[7]:`) records."""

    start: int
    is_code: bool
    body: list[str]
    execution_count: int | None = None


def _nbconvert_markdown(cell: _PyCell) -> list[_PyCell]:
    """`jupyter nbconvert --to script` writes markdown cells as comment lines after the code of the cell before
    them, two blank lines apart (the first ones after the `#!` and coding lines), one blank line between two
    markdown cells: split such a trailing block off as text cells, so that report answers written in markdown
    are read from the export too and every cell keeps its place in the notebook's numbering. Comments that
    follow code more closely stay with the code; a marked cell stays a code cell even when it is empty."""
    body = cell.body
    code_end = max((index + 1 for index, line in enumerate(body) if _is_code_line(line)), default=0)
    header = 0
    is_header = cell.start == 0
    if code_end == 0 and is_header:  # the file's header: `#!/usr/bin/env python`, `# coding: utf-8`
        while header < len(body) and (body[header].startswith("#!") or _CODING_LINE.match(body[header])):
            header += 1

    def opens_markdown(index: int) -> bool:
        after_two_blank_lines = index >= 2 and not body[index - 1].strip() and not body[index - 2].strip()
        return bool(body[index].strip()) and (code_end == 0 or after_two_blank_lines)

    text_start = next((index for index in range(max(code_end, header), len(body)) if opens_markdown(index)), None)
    code_lines = body if text_start is None else body[:text_start]
    parts = [] if is_header and not code_end else [_PyCell(cell.start, True, code_lines, cell.execution_count)]
    if text_start is None:
        return parts
    block: list[str] = []
    for index in range(text_start, len(body) + 1):
        if index < len(body) and body[index].strip():
            block.append(body[index])
            continue
        if block:
            parts.append(_PyCell(cell.start + index - len(block), False, block))
            block = []
    return parts


def _is_code_line(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _comment_text(lines: list[str]) -> str:
    """A markdown cell of a percent-format file: its comment lines without the leading `# `."""
    return "\n".join(line.lstrip().removeprefix("#").removeprefix(" ") for line in lines)


def _has_code(lines: list[str]) -> bool:
    return any(_is_code_line(line) for line in lines)
