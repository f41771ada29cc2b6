"""Static checks on a submission's parsed source: the loops a function holds, to name the lines that the
behavioural "no Python loops" check saw grow (`autograder.grading.loops` gives the verdict), and what lives in
cells the grader never runs (the `supervised=` flag of a call).
Pure AST: nothing is executed, and literal values are read with `ast.literal_eval` only.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from autograder.ingest.extract import Definition, Submission, parse_cell
from autograder.ingest.reader import CellRef

_LOOP_WORDS = {
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
}
_SNIPPET_CHARS = 60
_TRACING_NAMES = {
    "settrace", "setprofile", "gettrace", "getprofile", "monitoring", "_getframe", "f_trace", "f_trace_lines",
}

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class _Located:
    """A function node with what is needed to report lines in cell coordinates and to follow helpers."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    definition: Definition
    owner: ast.ClassDef | None

    @property
    def key(self) -> tuple[CellRef, int, int, int]:
        """Identifies the function by position, since every lookup parses the definition afresh."""
        return (self.definition.cell, self.definition.lineno, self.node.lineno, self.node.col_offset)

    def line_of(self, node: ast.AST) -> int:
        return self.definition.lineno + node.lineno - 1

    def where(self, node: ast.AST) -> str:
        return f"{self.definition.cell}, line {self.line_of(node)}"


@dataclass(frozen=True)
class LoopFinding:
    """One loop or comprehension: where it is (cell, line in the cell), what it is, and through which helper
    it was reached ("" for the function itself)."""

    cell: CellRef
    line: int
    word: str
    snippet: str
    via: str = ""

    def describe(self) -> str:
        prefix = f"in helper {self.via}: " if self.via else ""
        return f"{prefix}{self.cell}, line {self.line}: {self.word} `{self.snippet}`"


def _snippet(node: ast.AST) -> str:
    if isinstance(node, ast.For | ast.AsyncFor):
        text = f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}"
    elif isinstance(node, ast.While):
        text = f"while {ast.unparse(node.test)}"
    else:
        text = ast.unparse(node)
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "…"


def _members(node: ast.AST) -> dict[str, ast.AST]:
    """Named definitions directly in a class or function body; the last one of a name wins."""
    return {
        child.name: child
        for child in getattr(node, "body", [])
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def _locate(submission: Submission, qualname: str) -> _Located:
    head, *rest = qualname.split(".")
    definition = submission.definitions.get(head)
    if definition is None or definition.kind == "constant":
        raise KeyError(f"{qualname}: no function or class named {head!r} in the submission")
    node: ast.AST = ast.parse(definition.source).body[0]
    owner: ast.ClassDef | None = None
    for part in rest:
        found = _members(node).get(part)
        if found is None:
            parent = getattr(node, "name", head)
            raise KeyError(f"{qualname}: {part!r} is not defined in {parent} ({definition.cell})")
        owner = node if isinstance(node, ast.ClassDef) else None
        node = found
    if not isinstance(node, _FunctionNode):
        raise KeyError(f"{qualname} is a class, not a function or method")
    return _Located(node, definition, owner)


def _scanned(node: _FunctionNode) -> ast.Module:
    """What runs when the function is called, or hands work to code that does: its body, and also its default
    values and decorators, where a lambda or a helper reference can hide a loop."""
    arguments = node.args
    defaults = [value for value in [*arguments.defaults, *arguments.kw_defaults] if value is not None]
    extra = [ast.Expr(value) for value in [*defaults, *node.decorator_list]]
    return ast.Module(body=[*extra, *node.body], type_ignores=[])


def _class_methods(submission: Submission, name: str) -> list[tuple[str, _Located]]:
    definition = submission.definitions[name]
    node = ast.parse(definition.source).body[0]
    assert isinstance(node, ast.ClassDef)
    return [
        (f"{name}.{member.name}", _Located(member, definition, node))
        for member in _members(node).values()
        if isinstance(member, _FunctionNode)
    ]


def _helpers(submission: Submission, located: _Located) -> list[tuple[str, _Located]]:
    """Student functions, the methods of student classes, and same-class methods that this function refers to
    by name (`helper(...)`, `map(helper, x)`, `Scorer()(x)`, `self.helper(...)`), so that a loop moved into a
    helper is still found."""
    args = located.node.args.posonlyargs + located.node.args.args
    self_name = args[0].arg if located.owner is not None and args else None
    methods = _members(located.owner) if located.owner is not None else {}
    found: list[tuple[str, _Located]] = []
    for node in ast.walk(_scanned(located.node)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            definition = submission.definitions.get(node.id)
            if definition is not None and definition.kind == "function":
                found.append((node.id, _locate(submission, node.id)))
            elif definition is not None and definition.kind == "class":
                found.extend(_class_methods(submission, node.id))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == self_name
            and isinstance(methods.get(node.attr), _FunctionNode)
        ):
            method = methods[node.attr]
            assert isinstance(method, _FunctionNode)
            found.append((f"{located.owner.name}.{node.attr}", _Located(method, located.definition, located.owner)))
    return found


def _followed(submission: Submission, qualname: str, follow_helpers: bool) -> list[tuple[str, _Located]]:
    """`qualname` and, with `follow_helpers`, every student function, class method and same-class method it
    reaches by name, each with the helper name it was reached through ("" for `qualname` itself)."""
    start = _locate(submission, qualname)
    followed: list[tuple[str, _Located]] = []
    pending: list[tuple[str, _Located]] = [("", start)]
    seen = {start.key}
    while pending:
        via, located = pending.pop(0)
        followed.append((via, located))
        if follow_helpers:
            for name, helper in _helpers(submission, located):
                if helper.key not in seen:
                    seen.add(helper.key)
                    pending.append((name, helper))
    return followed


def find_python_loops(submission: Submission, qualname: str, *, follow_helpers: bool = True) -> list[LoopFinding]:
    """Every for/while loop, comprehension and generator expression in `qualname` ("func" or "Class.method"):
    its body, nested functions, default values and decorators. With `follow_helpers`, the loops of the student
    functions, classes and same-class methods it refers to count too. Raises KeyError when the name is not
    defined."""
    findings: list[LoopFinding] = []
    for via, located in _followed(submission, qualname, follow_helpers):
        loops = [
            node for node in ast.walk(_scanned(located.node))
            if isinstance(node, ast.For | ast.AsyncFor | ast.While) or type(node) in _LOOP_WORDS
        ]
        for node in sorted(loops, key=lambda n: (n.lineno, n.col_offset)):
            word = "while loop" if isinstance(node, ast.While) else _LOOP_WORDS.get(type(node), "for loop")
            findings.append(LoopFinding(located.definition.cell, located.line_of(node), word, _snippet(node), via))
    return findings


def find_tracing_names(submission: Submission, qualname: str) -> list[str]:
    """Where `qualname` or a helper it reaches names the interpreter's tracing hooks (`sys.settrace`,
    `sys.setprofile`, `sys.gettrace`, `sys.monitoring`, ... as a name, an attribute or a string): code that
    could hide a loop from the behavioural check by switching tracing off and back on around it. Each entry
    reads "cell C, line L: `<name>`". Raises KeyError when the name is not defined."""
    found: list[str] = []
    for via, located in _followed(submission, qualname, follow_helpers=True):
        for node in ast.walk(_scanned(located.node)):
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            else:
                continue
            if name in _TRACING_NAMES:
                prefix = f"in helper {via}: " if via else ""
                found.append(f"{prefix}{located.where(node)}: `{name}`")
    return found


def function_has_python_loops(submission: Submission, qualname: str, *, follow_helpers: bool = True) -> list[str]:
    """`find_python_loops`, each described as "cell C, line L: <kind> `<snippet>`"; empty means loop-free."""
    return [finding.describe() for finding in find_python_loops(submission, qualname, follow_helpers=follow_helpers)]


def _call_matches(call: ast.Call, func_name: str) -> bool:
    parts = []
    node = call.func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return False
    parts.append(node.id)
    return ".".join(reversed(parts)) == func_name


def _literal(node: ast.AST | None) -> object | None:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def keyword_arguments_of_calls(
    submission: Submission, func_name: str, keyword: str, *, position: int | None = None
) -> list[tuple[CellRef, object | None]]:
    """For every call `func_name(..., keyword=<literal>)` in the cells (in cell and source order), the
    cell and the literal value; None when the argument is absent or not a literal. `position`
    (0-based) also reads the argument when it is passed positionally. Cells that do not parse are skipped."""
    results: list[tuple[CellRef, object | None]] = []
    for cell, source in zip(submission.cells, submission.cell_sources, strict=True):
        try:
            tree = parse_cell(source)
        except SyntaxError:
            continue
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _call_matches(node, func_name)]
        for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset)):
            value = next((kw.value for kw in call.keywords if kw.arg == keyword), None)
            positional = call.args[: position + 1] if position is not None else []
            if value is None and position is not None and len(positional) > position:
                if not any(isinstance(arg, ast.Starred) for arg in positional):
                    value = positional[position]
            results.append((cell, _literal(value)))
    return results
