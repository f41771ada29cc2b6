"""Composable cell preprocessors (in the spirit of nbgrader's) that make notebook cells plain Python.

IPython syntax (magics, shell escapes, help) and Colab-only code cannot run in the grader. Each step
rewrites one cell's source and never changes its number of lines, so that a later syntax error or
traceback still points at the line the student sees. Offending statements become `pass` at their own
indentation, which keeps the enclosing block valid. Steps record a short label of what they removed
with `CellContext.note`; `extract` turns those into the student's diagnostics.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Cell magics whose body is ordinary Python: the magic line goes, the body stays.
PYTHON_BODY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})

# Colab calls that need a Colab runtime, recognised even when their import was in a skipped cell.
_KNOWN_COLAB_CALLS = (
    r"drive\.(?:mount|flush_and_unmount)",
    r"files\.(?:upload|download)",
    r"auth\.authenticate_user",
    r"output\.(?:enable_custom_widget_manager|disable_custom_widget_manager|clear|eval_js)",
    r"google\.colab\.[\w.]+",
)
_COLAB_IMPORT = re.compile(r"^(?:from\s+google\.colab\b|import\s+google\.colab\b|from\s+google\s+import\s+colab\b)")
_ASSIGN_TARGET = r"(?:[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=(?!=)\s*)?"
_MAGIC_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]")
LABEL_CHARS = 40
# What the logical-line scanner must look at; everything else is skipped by the regex engine.
_CODE_SPECIAL = re.compile(r"[\"'#()\[\]{};?]")
_STRING_SPECIAL = {quote: re.compile(r"\\|" + quote) for quote in ('"', "'", '"""', "'''")}


@dataclass
class CellContext:
    """What a step knows about the cell it rewrites; `state` is shared by all cells of one submission."""

    index: int
    notes: list[tuple[int, str]] = field(default_factory=list)
    state: dict[str, object] = field(default_factory=dict)

    def note(self, line: int, text: str) -> None:
        """Record that something at (1-based) `line` will not run, as a short label for the student."""
        self.notes.append((line, short_label(text)))


Step = Callable[[str, CellContext], str]


@dataclass
class _LogicalLine:
    """Physical lines [start, end] forming one logical line; `semicolons` are the top-level `;` columns
    of the first physical line, `help` is set when a `?` appears outside strings and comments."""

    start: int
    end: int
    semicolons: list[int]
    help: bool


def short_label(text: str) -> str:
    """One line of at most LABEL_CHARS characters, so that a diagnostic stays short."""
    text = " ".join(text.rstrip("\\").split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _is_magic_start(stripped: str) -> bool:
    return stripped.startswith(("%", "!", "?")) or bool(_MAGIC_ASSIGNMENT.match(stripped))


def _logical_lines(lines: list[str]) -> list[_LogicalLine]:
    """Group physical lines into logical ones (brackets, strings, backslashes), without tokenize,
    which would choke on the very IPython syntax we are looking for."""
    result: list[_LogicalLine] = []
    depth = 0
    quote = ""
    continued = False
    current: _LogicalLine | None = None
    in_magic = False
    for number, line in enumerate(lines):
        if in_magic:
            assert current is not None
            current.end = number
            in_magic = line.endswith("\\")
            continue
        if current is None or not (depth or quote or continued):
            current = _LogicalLine(number, number, [], False)
            result.append(current)
            if _is_magic_start(line.lstrip()):
                # An IPython line is not Python: only its backslash continuation matters.
                in_magic = line.endswith("\\")
                continue
        assert current is not None
        current.end = number
        i = 0
        in_comment = False
        while True:
            if quote:
                match = _STRING_SPECIAL[quote].search(line, i)
                if match is None:
                    break
                if match.group() == "\\":
                    i = match.end() + 1  # an escaped character cannot end the string
                else:
                    i, quote = match.end(), ""
                continue
            match = _CODE_SPECIAL.search(line, i)
            if match is None:
                break
            char, i = match.group(), match.end()
            if char == "#":
                in_comment = True
                break
            if char in "\"'":
                quote = char * 3 if line.startswith(char * 3, match.start()) else char
                i = match.start() + len(quote)
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth = max(depth - 1, 0)
            elif char == ";":
                if depth == 0 and number == current.start:
                    current.semicolons.append(match.start())
            else:
                current.help = True
        continued = not in_comment and line.endswith("\\")
        if len(quote) == 1 and not continued:
            quote = ""  # an unterminated one-line string: a syntax error that ast will report
    return result


def strip_leading_indent(source: str, ctx: CellContext) -> str:
    """Dedent a cell whose first line is indented, as IPython does before running it."""
    lines = source.split("\n")
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    prefix = first[: len(first) - len(first.lstrip())]
    if not prefix:
        return source
    return "\n".join(line[len(prefix):] if line.startswith(prefix) else line for line in lines)


def drop_cell_magics(source: str, ctx: CellContext) -> str:
    """Blank a `%%magic` cell (its body is not Python), except magics whose body is Python (`%%time`)."""
    lines = source.split("\n")
    first = next((number for number, line in enumerate(lines) if line.strip()), None)
    if first is None or not lines[first].lstrip().startswith("%%"):
        return source
    magic = lines[first].lstrip()[2:].split(maxsplit=1)
    name = magic[0] if magic else ""
    if name in PYTHON_BODY_CELL_MAGICS:
        lines[first] = "pass"
        return "\n".join(lines)
    ctx.note(first + 1, f"%%{name} cell")
    return "\n".join("" for _ in lines)


def neutralise_ipython_lines(source: str, ctx: CellContext) -> str:
    """Replace line magics, shell escapes (`!cmd`, `x = !cmd`, `x = %time f()`) and help (`obj?`) by `pass`."""
    lines = source.split("\n")
    for logical in _logical_lines(lines):
        stripped = lines[logical.start].lstrip()
        single_help = logical.help and logical.start == logical.end
        if _is_magic_start(stripped) or single_help:
            ctx.note(logical.start + 1, stripped)
            _replace(lines, logical)
    return "\n".join(lines)


def _replace(lines: list[str], logical: _LogicalLine) -> None:
    """Turn a whole logical line into `pass` at its indentation and blank its continuation lines."""
    first = lines[logical.start]
    lines[logical.start] = first[: len(first) - len(first.lstrip())] + "pass"
    for number in range(logical.start + 1, logical.end + 1):
        lines[number] = ""


def _colab_names(segment: str) -> set[str]:
    """Names bound by a Colab import statement (`from google.colab import drive as d` binds `d`)."""
    try:
        tree = ast.parse(segment)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names - {"google"}


def neutralise_colab(source: str, ctx: CellContext) -> str:
    """Replace Colab-only imports and calls (`drive.mount(...)`, `files.upload()`, ...) by `pass`."""
    bound: set[str] = ctx.state.setdefault("colab_names", set())  # type: ignore[assignment]
    lines = source.split("\n")
    for logical in _logical_lines(lines):
        first = lines[logical.start]
        indent = first[: len(first) - len(first.lstrip())]
        if logical.start == logical.end and logical.semicolons:
            starts = [len(indent), *(column + 1 for column in logical.semicolons)]
            ends = [*logical.semicolons, len(first)]
            segments = [first[a:b] for a, b in zip(starts, ends, strict=True)]
        else:
            segments = ["\n".join(lines[logical.start : logical.end + 1])[len(indent) :]]
        changed = False
        for position, segment in enumerate(segments):
            text = segment.strip()
            if _COLAB_IMPORT.match(text):
                bound.update(_colab_names(text))
            elif not _colab_call_pattern(frozenset(bound)).match(text):
                continue
            ctx.note(logical.start + 1, text)
            segments[position] = "pass"
            changed = True
        if not changed:
            continue
        if len(segments) == 1:
            _replace(lines, logical)
        else:
            lines[logical.start] = indent + "; ".join(segment.strip() for segment in segments)
    return "\n".join(lines)


@functools.lru_cache(maxsize=64)
def _colab_call_pattern(bound: frozenset[str]) -> re.Pattern[str]:
    """A statement calling Colab: a known Colab call, or any use of a name imported from google.colab."""
    callees = list(_KNOWN_COLAB_CALLS) + [re.escape(name) + r"(?:\.[\w.]+)?" for name in sorted(bound)]
    return re.compile(rf"^{_ASSIGN_TARGET}(?:{'|'.join(callees)})\s*\(")


DEFAULT_STEPS: tuple[Step, ...] = (strip_leading_indent, drop_cell_magics, neutralise_ipython_lines, neutralise_colab)


def preprocess_cells(
    cells: Sequence[str], steps: Sequence[Step] = DEFAULT_STEPS
) -> tuple[list[str], list[list[tuple[int, str]]]]:
    """Run every step over every cell in order; return the new sources and, per cell, what was removed
    as (line, label) pairs in line order."""
    state: dict[str, object] = {}
    sources: list[str] = []
    notes: list[list[tuple[int, str]]] = []
    for index, source in enumerate(cells, start=1):
        ctx = CellContext(index=index, state=state)
        for step in steps:
            new = step(source, ctx)
            if new.count("\n") != source.count("\n"):
                raise ValueError(f"preprocessor {step.__name__} changed the line count of cell {index}")
            source = new
        sources.append(source)
        notes.append(sorted(ctx.notes, key=lambda note: note[0]))
    return sources, notes
