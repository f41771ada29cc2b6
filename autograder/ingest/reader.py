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
from dataclasses import dataclass
from pathlib import Path

import nbformat

ACCEPTED_KINDS = (
    "a Jupyter/Colab notebook (.ipynb) or a Python file (.py, plain or jupytext percent format with "
    "'# %%' cells)"
)
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024

_DOWNLOAD_HINT = "In Colab use File > Download > Download .ipynb and submit that file."
# Cell markers of jupytext/VS Code ("# %%", "#%%") and of `jupyter nbconvert --to script` ("# In[3]:").
_PERCENT_MARKER = re.compile(r"^#\s?%%(?P<rest>(?:\s.*)?)$")
_NBCONVERT_MARKER = re.compile(r"^# In\[[\d ]*\]:\s*$")
_NON_CODE_CELL = re.compile(r"\[(?:markdown|md|raw)\]")
_CODING_LINE = re.compile(r"^#.*coding[:=]")


class IngestError(Exception):
    """The submission cannot be read at all; the message says what to fix and names the file."""


@dataclass(frozen=True)
class SourceCell:
    """One cell. `file_line` is the 1-based line of the cell's first line in a .py file (None in a
    notebook), so that messages can point into the file the student edits. `kind` "text" is a markdown
    cell (in a .py file: its comment lines), kept only for the report answers."""

    source: str
    file_line: int | None = None
    kind: str = "code"


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
    if suffix not in (".ipynb", ".py"):
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
    text_cells: list[tuple[int, str]] = []  # (number of code cells before it, text)
    for position, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise IngestError(f"{name} is a damaged notebook: cell {position} is not an object. {_DOWNLOAD_HINT}")
        source = cell.get("source", "")
        readable = isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)
        if cell.get("cell_type") != "code":
            if cell.get("cell_type") == "markdown" and readable:
                text_cells.append((len(code_cells), source if isinstance(source, str) else "".join(source)))
            continue
        if not readable:
            raise IngestError(
                f"{name} is a damaged notebook: cell {position} has no readable source. {_DOWNLOAD_HINT}"
            )
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
    code = [SourceCell(_normalise_newlines(cell.source)) for cell in notebook.cells]
    if not code:
        raise IngestError(f"{name} has no code cells; did you submit the right notebook? {_DOWNLOAD_HINT}")
    result: list[SourceCell] = []
    for index, cell in enumerate(code):
        result += [SourceCell(_normalise_newlines(text), kind="text") for before, text in text_cells if before == index]
        result.append(cell)
    result += [SourceCell(_normalise_newlines(text), kind="text") for before, text in text_cells if before == len(code)]
    return result


def _python_cells(name: str, data: bytes) -> list[SourceCell]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise IngestError(f"{name} is not readable Python text ({exc}); save it as UTF-8 and submit again.") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _normalise_newlines(text).split("\n")
    # Each cell: (line index of its first line, is code, lines).
    cells: list[tuple[int, bool, list[str]]] = [(0, True, [])]
    for index, line in enumerate(lines):
        percent = _PERCENT_MARKER.match(line)
        if percent or _NBCONVERT_MARKER.match(line):
            is_code = not (percent and _NON_CODE_CELL.search(percent.group("rest")))
            cells.append((index + 1, is_code, []))
        else:
            cells[-1][2].append(line)
    if any(_NBCONVERT_MARKER.match(line) for line in lines):
        cells = [part for cell in cells for part in _nbconvert_markdown(*cell)]
    # Text before the first marker is a jupytext header of comments; it is a cell only if it holds code.
    elif len(cells) > 1 and not _has_code(cells[0][2]):
        cells = cells[1:]
    if not any(_has_code(body) for _, is_code, body in cells if is_code):
        raise IngestError(f"{name} contains no Python code.")
    return [
        SourceCell("\n".join(body), start + 1) if is_code else SourceCell(_comment_text(body), start + 1, "text")
        for start, is_code, body in cells
    ]


def _nbconvert_markdown(start: int, is_code: bool, body: list[str]) -> list[tuple[int, bool, list[str]]]:
    """`jupyter nbconvert --to script` writes markdown cells as comment lines after the code of the cell before
    them, two blank lines apart (the first ones after the `#!` and coding lines): split such a trailing block off
    as a text cell, so that report answers written in markdown are read from the export too. Comments that
    follow code more closely stay with the code."""
    code_end = max((index + 1 for index, line in enumerate(body) if _is_code_line(line)), default=0)
    header = 0
    if code_end == 0 and start == 0:  # the file's header: `#!/usr/bin/env python`, `# coding: utf-8`
        while header < len(body) and (body[header].startswith("#!") or _CODING_LINE.match(body[header])):
            header += 1

    def opens_markdown(index: int) -> bool:
        after_two_blank_lines = index >= 2 and not body[index - 1].strip() and not body[index - 2].strip()
        return bool(body[index].strip()) and (code_end == 0 or after_two_blank_lines)

    text_start = next((index for index in range(max(code_end, header), len(body)) if opens_markdown(index)), None)
    if text_start is None:
        return [(start, True, body)] if code_end else []
    parts = [(start, True, body[:text_start])] if code_end else []
    return [*parts, (start + text_start, False, body[text_start:])]


def _is_code_line(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _comment_text(lines: list[str]) -> str:
    """A markdown cell of a percent-format file: its comment lines without the leading `# `."""
    return "\n".join(line.lstrip().removeprefix("#").removeprefix(" ") for line in lines)


def _has_code(lines: list[str]) -> bool:
    return any(_is_code_line(line) for line in lines)
