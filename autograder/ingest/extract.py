"""Split preprocessed cells into what the grader may run: imports, definitions, constants, other statements.

Each cell is parsed on its own, as a notebook runs it, so a syntax error costs that cell only.
Grading never re-runs the notebook: it calls the student's definitions itself. Every other top-level
statement (assignments, training calls, plotting, loops, I/O) is kept as a `Statement` and summarised
in a diagnostic; `autograder.ingest.dependencies` picks the few a graded definition needs.
Nothing here executes student code; `compile` is used only to find errors that `ast.parse` accepts
(`break` outside a loop, duplicate arguments) so that one bad definition cannot break the others.
"""

from __future__ import annotations

import ast
import os
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from autograder.ingest.preprocess import DEFAULT_STEPS, Step, preprocess_cells, short_label
from autograder.ingest.reader import DEFAULT_MAX_FILE_BYTES, CellRef, IngestError, SourceCell, read_cells
from autograder.worker.names import IMPORT_ERRORS_NAME

_LABELS_SHOWN = 3


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep parsing cheap and the parser's recursion safe on hostile input."""

    max_cells: int = 2000
    max_cell_chars: int = 200_000
    max_total_chars: int = 1_000_000
    max_ast_depth: int = 200
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


@dataclass(frozen=True)
class Definition:
    """A top-level function, class or constant. `source` compiles on its own; its first line is line
    `lineno` of cell `cell`, so padding it with `lineno - 1` newlines and compiling it under the name
    `cell.filename` gives tracebacks the student's own cell and line numbers."""

    name: str
    kind: str
    source: str
    cell: CellRef
    lineno: int


@dataclass(frozen=True)
class ImportStmt:
    """A top-level import, kept as written so the worker can bind the names the definitions use."""

    source: str
    cell: CellRef
    lineno: int


@dataclass(frozen=True)
class Statement:
    """Any other top-level statement (`device = ...`, `with ...:`, a training call), as written; it compiles
    on its own and starts at line `lineno` of cell `cell`. `label` names it for the student."""

    source: str
    cell: CellRef
    lineno: int
    label: str


@dataclass(frozen=True)
class Submission:
    """The gradable content of a submission: plain text, never executed in the trusted process. `cells`,
    `cell_sources` and `file_lines` describe the code cells, in order."""

    definitions: dict[str, Definition]
    imports: list[ImportStmt]
    diagnostics: list[str]
    cell_sources: list[str]
    origin: str = ""
    file_lines: list[int | None] = field(default_factory=list)
    text_cells: list[str] = field(default_factory=list)  # markdown: where the report answers are
    statements: list[Statement] = field(default_factory=list)
    # (cell, line) of every definition of a name defined more than once, in cell order; the last one counts
    redefinitions: dict[str, list[tuple[CellRef, int]]] = field(default_factory=dict)
    cells: list[CellRef] = field(default_factory=list)

    def source_of(self, position: int) -> str | None:
        """The (preprocessed) code of the code cell at this notebook position, None when there is none."""
        sources = zip(self.cells, self.cell_sources, strict=True)
        return next((source for cell, source in sources if cell.position == position), None)

    def module_source(self, names: set[str] | None = None, *, guard_imports: bool = True) -> str:
        """Render the imports and the chosen definitions (all when `names` is None) as one module.

        Imports come first, then constants, then functions and classes in cell order. With
        `guard_imports`, an import that fails (a package the grader lacks) is recorded in the list
        `__ingest_import_errors__` instead of stopping the module, so an unused import costs nothing.
        """
        if names is None:
            chosen = list(self.definitions.values())
        else:
            missing = sorted(names - self.definitions.keys())
            if missing:
                raise KeyError(f"not defined in the submission: {', '.join(missing)}")
            chosen = [self.definitions[name] for name in names]
        futures, imports = [], []
        seen: set[str] = set()
        for stmt in self.imports:
            if stmt.source in seen:
                continue
            seen.add(stmt.source)
            (futures if stmt.source.startswith("from __future__") else imports).append(stmt)
        parts = [f"{stmt.source}  # {stmt.cell}" for stmt in futures]
        if guard_imports and imports:
            parts.append(f"{IMPORT_ERRORS_NAME} = []")
        for stmt in imports:
            where = f"{stmt.cell}, line {stmt.lineno}"
            if guard_imports:
                parts.append(
                    f"try:  # {where}\n{textwrap.indent(stmt.source, '    ')}\n"
                    f"except Exception as _ingest_exc:\n"
                    f"    {IMPORT_ERRORS_NAME}.append(({where!r}, {stmt.source!r}, repr(_ingest_exc)))"
                )
            else:
                parts.append(f"# {where}\n{stmt.source}")
        ordered = sorted(chosen, key=lambda d: (d.kind != "constant", d.cell, d.lineno))
        parts.extend(f"# {d.cell}, line {d.lineno}\n{d.source}" for d in ordered)
        return "\n".join(parts) + "\n"


def parse_cell(source: str, limits: ParseLimits = ParseLimits()) -> ast.Module:
    """Parse one cell within the limits; raise SyntaxError (with a student-facing message) otherwise."""
    if len(source) > limits.max_cell_chars:
        raise SyntaxError(f"cell is too long ({len(source):,} characters; the limit is {limits.max_cell_chars:,})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except SyntaxError:
        raise
    except ValueError as exc:  # e.g. null bytes in the source
        raise SyntaxError(str(exc)) from None
    except (MemoryError, RecursionError):
        raise SyntaxError("code nested too deeply for the parser; simplify it") from None
    # Iterative, and inlined rather than ast.iter_child_nodes: this walk visits every node of every cell.
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limits.max_ast_depth:
            error = SyntaxError(f"code nested too deeply (more than {limits.max_ast_depth} levels); simplify it")
            error.lineno = getattr(node, "lineno", None)
            raise error
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST) and item._fields:
                        push((item, depth + 1))
            elif isinstance(value, ast.AST) and value._fields:
                push((value, depth + 1))
    return tree


def _is_literal(node: ast.AST) -> bool:
    """A value built only from literals, so that keeping it runs no student logic."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Constant):
            continue
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            stack.extend(node.elts)
        elif isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                return False
            stack.extend(node.keys)  # type: ignore[arg-type]
            stack.extend(node.values)
        elif isinstance(node, ast.UnaryOp):
            stack.append(node.operand)
        elif isinstance(node, ast.BinOp):
            stack.extend((node.left, node.right))
        else:
            return False
    return True


def _constant_name(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value = stmt.targets[0], stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and stmt.simple:
        target, value = stmt.target, stmt.value
    else:
        return None
    if isinstance(target, ast.Name) and _is_literal(value):
        return target.id
    return None


def _segment(lines: list[str], lineno: int, col: int, end_lineno: int, end_col: int) -> str:
    """Exact source between two AST positions (columns are UTF-8 byte offsets, as ast reports them)."""
    def cut(line: str, start: int, stop: int | None) -> str:
        return line.encode()[start:stop].decode()

    if lineno == end_lineno:
        return cut(lines[lineno - 1], col, end_col)
    return "\n".join(
        [cut(lines[lineno - 1], col, None), *lines[lineno : end_lineno - 1], cut(lines[end_lineno - 1], 0, end_col)]
    )


def _expression_text(node: ast.AST) -> str:
    """`plt.show(...)`, `Autoencoder(...).to(...)`: enough of a callee for the student to recognise it."""
    if isinstance(node, ast.Call):
        return f"{_expression_text(node.func)}(...)"
    if isinstance(node, ast.Attribute):
        return f"{_expression_text(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "..."


def _target_text(target: ast.expr) -> str:
    if isinstance(target, ast.Tuple | ast.List):
        return ", ".join(_target_text(element) for element in target.elts)
    return _expression_text(target)


def _describe(stmt: ast.stmt) -> str:
    """A few words naming a dropped statement, so the student recognises it."""
    value = getattr(stmt, "value", None)
    if isinstance(stmt, ast.Expr) and isinstance(value, ast.Call):
        return short_label(_expression_text(value))
    if isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names = ", ".join(_target_text(t) for t in targets)
        if isinstance(value, ast.Call):
            return short_label(f"{names} = {_expression_text(value)}")
        return short_label(f"{names} = ...")
    words = {
        ast.For: "for loop", ast.AsyncFor: "for loop", ast.While: "while loop", ast.If: "if block",
        ast.With: "with block", ast.AsyncWith: "with block", ast.Try: "try block", ast.Delete: "del",
        ast.Global: "global", ast.Nonlocal: "nonlocal", ast.Expr: "expression", ast.Assert: "assert",
        ast.Raise: "raise", ast.Return: "return",
    }
    label = words.get(type(stmt), type(stmt).__name__.lower())
    nested = [
        node.name for node in ast.walk(stmt)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node is not stmt
    ]
    if nested and isinstance(stmt, ast.If | ast.Try | ast.With | ast.For | ast.While):
        return f"{label} defining {', '.join(nested[:2])} (move definitions to top level)"
    return label


def _imports_the_grader(stmt: ast.Import | ast.ImportFrom) -> bool:
    """A submission has no business with the grader's code (its standard parts, probes, loaders)."""
    if isinstance(stmt, ast.ImportFrom):
        modules = [stmt.module or ""] if stmt.level == 0 else []
    else:
        modules = [alias.name for alias in stmt.names]
    return any(module == "autograder" or module.startswith("autograder.") for module in modules)


def _is_noise(stmt: ast.stmt) -> bool:
    """Statements whose dropping changes nothing: `pass` (left by preprocessing) and bare strings."""
    return isinstance(stmt, ast.Pass) or (
        isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
    )


def _where(cell: CellRef, line: int | None, file_line: int | None) -> str:
    if line is None:
        return str(cell)
    text = f"{cell}, line {line}"
    return f"{text} (file line {file_line + line - 1})" if file_line is not None else text


def _compile_error(stmt: ast.stmt, cell: CellRef) -> SyntaxError | None:
    """Errors the compiler finds but the parser does not; compiling the node itself avoids a re-parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(ast.Module(body=[stmt], type_ignores=[]), cell.filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc
    except (ValueError, MemoryError, RecursionError) as exc:
        return SyntaxError(str(exc) or type(exc).__name__)
    return None


def _syntax_message(exc: SyntaxError, cell: CellRef, file_line: int | None) -> str:
    message = f"{_where(cell, exc.lineno, file_line)}: {exc.msg}"
    text = (exc.text or "").strip()
    if text:
        message += f": {text[:60]}{'…' if len(text) > 60 else ''}"
    return message


def extract(
    cells: Sequence[SourceCell | str],
    *,
    limits: ParseLimits = ParseLimits(),
    steps: Sequence[Step] = DEFAULT_STEPS,
    origin: str = "submission",
) -> Submission:
    """Preprocess and parse every code cell into imports, top-level definitions, literal constants and the
    other top-level statements (which run only when a graded definition needs them)."""
    cells = [cell if isinstance(cell, SourceCell) else SourceCell(cell) for cell in cells]
    text_cells = [cell.source for cell in cells if cell.kind == "text"]
    # Cells that do not say where they are (a plain list of sources) are numbered in the order given.
    references = [
        CellRef(cell.position or index, cell.execution_count)
        for index, cell in enumerate(cells, start=1)
        if cell.kind == "code"
    ]
    cells = [cell for cell in cells if cell.kind == "code"]
    if len(cells) > limits.max_cells:
        raise IngestError(f"{origin} has {len(cells)} code cells; at most {limits.max_cells} are accepted.")
    total = sum(len(cell.source) for cell in cells)
    if total > limits.max_total_chars:
        raise IngestError(
            f"{origin} holds {total:,} characters of code; at most {limits.max_total_chars:,} are accepted."
        )
    sources, removed = preprocess_cells([cell.source for cell in cells], steps)
    definitions: dict[str, Definition] = {}
    imports: list[ImportStmt] = []
    statements: list[Statement] = []
    sites: dict[str, list[tuple[CellRef, int]]] = {}
    diagnostics: list[str] = []
    for place, cell, source, notes in zip(references, cells, sources, removed, strict=True):
        dropped = list(notes)  # (line, label) pairs
        try:
            tree = parse_cell(source, limits)
        except SyntaxError as exc:
            diagnostics.append(_syntax_message(exc, place, cell.file_line) + " (cell skipped)")
            continue
        lines = source.split("\n")
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                if _imports_the_grader(stmt):
                    diagnostics.append(
                        f"{_where(place, stmt.lineno, cell.file_line)}: imports of the grader's own package "
                        "(`autograder`) are not allowed; the import was skipped"
                    )
                    continue
                text = _segment(lines, stmt.lineno, stmt.col_offset, stmt.end_lineno, stmt.end_col_offset)
                imports.append(ImportStmt(text, place, stmt.lineno))
                continue
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                start = min([stmt.lineno, *(d.lineno for d in stmt.decorator_list)])
                kind, name = ("class" if isinstance(stmt, ast.ClassDef) else "function"), stmt.name
                text = _segment(lines, start, 0, stmt.end_lineno, stmt.end_col_offset)
            elif (name := _constant_name(stmt)) is not None:
                kind, start = "constant", stmt.lineno
                text = _segment(lines, start, stmt.col_offset, stmt.end_lineno, stmt.end_col_offset)
            else:
                if not _is_noise(stmt):
                    label = _describe(stmt)
                    dropped.append((stmt.lineno, label))
                    if _compile_error(stmt, place) is None:
                        text = _segment(lines, stmt.lineno, stmt.col_offset, stmt.end_lineno, stmt.end_col_offset)
                        statements.append(Statement(text, place, stmt.lineno, label))
                continue
            error = _compile_error(stmt, place)
            if error is not None:
                diagnostics.append(_syntax_message(error, place, cell.file_line) + f" ({name} skipped)")
                continue
            definitions.pop(name, None)  # a redefinition moves the name to its new place in cell order
            definitions[name] = Definition(name, kind, text, place, start)
            sites.setdefault(name, []).append((place, start))
        if dropped:
            dropped.sort(key=lambda item: item[0])
            shown = ", ".join(label for _, label in dropped[:_LABELS_SHOWN])
            shown += ", …" if len(dropped) > _LABELS_SHOWN else ""
            plural = "s" if len(dropped) > 1 else ""
            diagnostics.append(f"{place}: {len(dropped)} statement{plural} not run by the grader ({shown})")
    return Submission(
        definitions=definitions,
        imports=imports,
        diagnostics=diagnostics,
        cell_sources=sources,
        origin=origin,
        file_lines=[cell.file_line for cell in cells],
        text_cells=text_cells,
        statements=statements,
        redefinitions={name: places for name, places in sites.items() if len(places) > 1},
        cells=references,
    )


def ingest(
    path: str | os.PathLike[str], *, limits: ParseLimits = ParseLimits(), steps: Sequence[Step] = DEFAULT_STEPS
) -> Submission:
    """Read, clean and extract a submission file; raise IngestError when it cannot be read at all."""
    cells = read_cells(path, max_file_bytes=limits.max_file_bytes, include_text=True)
    return extract(cells, limits=limits, steps=steps, origin=os.path.basename(path))
