"""The one source of the assignment, read into cells.

`ps7.py` is a percent-format file (reviewable in git, editable in Jupytext) from which both the
reference notebook and the student template are built, so they cannot drift apart. Markers:

- ``# %% [markdown]`` starts a markdown cell (its lines are comments: ``# text``);
- ``# %% tags=["provided"]`` starts a cell of provided definitions, the code the grader loads too;
- ``# %%`` starts a cell the notebook runs (training, plots); the grader never runs these;
- inside any cell, ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` is a student region; an optional
  ``### TEMPLATE`` line inside it starts the text the template shows instead (by default a TODO and
  ``raise NotImplementedError``);
- a line ``# INCLUDE autograder/data/stl10.py`` in a provided cell is replaced by that module's code, so
  that a reader the grader uses is the very code the notebook runs.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent  # the checkout: notebooks, tests, `run_autograder`, `pyproject.toml`
SOURCE_FILE = Path(__file__).with_name("ps7.py")
# The student package holds no `ps7.py` (it has the solutions): `student-package` writes the provided code here.
PROVIDED_FILE = Path(__file__).with_name("provided.py.txt")

_CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
_INCLUDE = re.compile(r"^(?P<indent>\s*)# INCLUDE (?P<path>\S+)\s*$")
BEGIN, TEMPLATE, END = "### BEGIN SOLUTION", "### TEMPLATE", "### END SOLUTION"


class SourceError(ValueError):
    """The assignment source is malformed; the message names the line."""


@dataclass(frozen=True)
class Cell:
    kind: str  # "markdown" or "code"
    tags: tuple[str, ...]
    text: str  # as in the source, solution markers included
    line: int  # 1-based line of the cell marker in the source

    @property
    def provided(self) -> bool:
        return "provided" in self.tags


def _parse_marker(rest: str, line: int) -> tuple[str, tuple[str, ...]]:
    rest = rest.strip()
    if rest == "[markdown]":
        return "markdown", ()
    if not rest:
        return "code", ()
    match = re.fullmatch(r"tags=(\[.*\])", rest)
    if not match:
        raise SourceError(f"{SOURCE_FILE.name}:{line}: unknown cell marker options {rest!r}")
    return "code", tuple(json.loads(match.group(1)))


def _include(path: str, indent: str, line: int) -> str:
    """Module code without its docstring: the module stays importable, the notebook self-contained."""
    file = PACKAGE_ROOT.parent / path
    if not file.is_file():
        raise SourceError(f"{SOURCE_FILE.name}:{line}: INCLUDE names a missing file {path}")
    text = file.read_text()
    module = ast.parse(text)
    body = module.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        text = "\n".join(text.splitlines()[body[0].end_lineno :])
    code = text.strip("\n")
    return "\n".join(indent + row if row else row for row in code.splitlines())


def read_source_cells(path: Path = SOURCE_FILE) -> list[Cell]:
    """Split the source into cells, expanding includes; text before the first marker is ignored."""
    cells: list[Cell] = []
    current: tuple[str, tuple[str, ...], int] | None = None
    rows: list[str] = []

    def close() -> None:
        if current is not None:
            kind, tags, line = current
            body = "\n".join(rows).strip("\n")
            if kind == "markdown":
                body = "\n".join(_uncomment(row, line) for row in body.splitlines())
            cells.append(Cell(kind, tags, body, line))

    for number, row in enumerate(path.read_text().splitlines(), start=1):
        marker = _CELL_MARKER.match(row)
        if marker:
            close()
            current, rows = (*_parse_marker(marker.group("rest"), number), number), []
            continue
        include = _INCLUDE.match(row)
        if include:
            row = _include(include.group("path"), include.group("indent"), number)
        rows.append(row)
    close()
    return cells


def _uncomment(row: str, line: int) -> str:
    if row == "#":
        return ""
    if not row.startswith("# "):
        raise SourceError(f"{SOURCE_FILE.name}: markdown cell at line {line} has a line not starting with '# '")
    return row[2:]


def render(text: str, *, solution: bool) -> str:
    """The reference (solution=True) or template version of one cell's text."""
    out: list[str] = []
    state = "outside"
    template_rows: list[str] = []
    indent = ""
    for row in text.splitlines():
        stripped = row.strip()
        if stripped == BEGIN:
            if state != "outside":
                raise SourceError(f"nested {BEGIN} in:\n{text}")
            state, template_rows, indent = "solution", [], row[: len(row) - len(row.lstrip())]
        elif stripped == TEMPLATE and state == "solution":
            state = "template"
        elif stripped == END:
            if state == "outside":
                raise SourceError(f"{END} without {BEGIN} in:\n{text}")
            if not solution:
                out.extend(template_rows or [f"{indent}# TODO: your code here", f"{indent}raise NotImplementedError"])
            state = "outside"
        elif state == "outside" or (state == "solution" and solution):
            out.append(row)
        elif state == "template":
            template_rows.append(row)
    if state != "outside":
        raise SourceError(f"{BEGIN} without {END} in:\n{text}")
    return "\n".join(out)


def provided_code(path: Path = SOURCE_FILE) -> str:
    """The provided cells as one module source: the canonical code the grader's worker loads. Where the source
    is absent (the student package), the copy of this very text that `student-package` wrote."""
    if not path.is_file() and PROVIDED_FILE.is_file():
        return PROVIDED_FILE.read_text().removesuffix("\n")
    return "\n\n".join(cell.text for cell in read_source_cells(path) if cell.provided)


def assignment_code(*, solution: bool, path: Path = SOURCE_FILE) -> str:
    """Provided and graded cells, in notebook order: the definitions a notebook run would create."""
    cells = [cell for cell in read_source_cells(path) if cell.provided or "graded" in cell.tags]
    return "\n\n".join(render(cell.text, solution=solution) for cell in cells)
