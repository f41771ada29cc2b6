"""Which of a submission's top-level statements the grader runs, found by dependency (pure AST, trusted).

A graded definition (`Encoder`, `train_ae`, ... : the names the assignment's graded cells define) may use
globals the student bound at top level: `device = torch.device(...)`, `criterion = nn.CrossEntropyLoss()`,
`feat_dim = 24 * 4 * 4`. `load_plan` follows the global names each graded definition reads (through the
student's own helpers, their default arguments and decorators, transitively) to the statements that bind
them, as "Run all" would have bound them: the last unconditional binding in cell order and every later
update (`cfg["wd"] = ...`, `counter += 1`, an `if`/`try`/`with` block that binds the name). Those statements
are loaded in notebook order, each under the worker's time budget.

Statements that need the data, a training run or notebook state are never run: those that bind or read a
name the assignment's own notebook cells bind (`train_loader`, `ae`, `clip_model`, ...), that call a function
the notebook runs on its data or trained models (`train_ae`, `test`, `embed_images`, ...; derived from the
assignment source, see `AssignmentFacts`) or a training method (`.fit`, `.backward`), and, transitively,
those that read what such a statement bound. A name they bind is reported in `LoadPlan.not_run`, which the
worker uses to explain the NameError a graded function then raises.

Over 400 lines on purpose: one analysis (names read, statements binding them, what may not run) whose steps share
its tables; split, one algorithm would be read across files.
"""

from __future__ import annotations

import ast
import functools
import json
import symtable
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from autograder.assignment.source import SOURCE_FILE, provided_code, read_source_cells, render
from autograder.ingest.extract import Statement, Submission
from autograder.ingest.reader import CellRef

TRAINING_METHODS = frozenset({"fit", "fit_transform", "backward"})
_COMPREHENSIONS = frozenset({"listcomp", "setcomp", "dictcomp", "genexpr"})
_RULE = (
    "graded code must not depend on the data, on training or on other notebook state, so the grader does not "
    "run that statement"
)
_END = 1 << 30  # "after every statement": where a function body, called by the grader, reads its globals


@dataclass(frozen=True)
class Names:
    """What one top-level statement binds and reads, from its symbol table and AST."""

    binds: frozenset[str]  # names it may (re)bind
    fresh: frozenset[str]  # names it binds unconditionally without reading them first
    stores: frozenset[str]  # `x[k] = ...`, `x.attr = ...`: the object bound to x is changed
    calls_on: frozenset[str]  # `x.method(...)` as a statement: may change x
    now: frozenset[str]  # globals read while it runs
    later: frozenset[str]  # globals read by the functions and lambdas it defines, when called
    calls: frozenset[str]  # functions called by name while it runs
    methods: frozenset[str]  # method names called while it runs


def _exec_time_nodes(stmt: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs when the statement runs: function and lambda bodies only run when called."""
    stack = [stmt]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            stack.extend(node.decorator_list)
            stack.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None)
        elif isinstance(node, ast.Lambda):
            stack.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _scope_reads(table: symtable.SymbolTable, now: set[str], later: set[str], deferred: bool) -> None:
    for child in table.get_children():
        child_deferred = deferred or (child.get_type() == "function" and child.get_name() not in _COMPREHENSIONS)
        reads = later if child_deferred else now
        # a global a function assigns (`global n; n += 1`) is read too: an augmented assignment reads first
        reads.update(
            s.get_name() for s in child.get_symbols() if s.is_global() and (s.is_referenced() or s.is_assigned())
        )
        _scope_reads(child, now, later, child_deferred)


def statement_names(source: str) -> Names:
    """The names of one top-level statement (its source compiles on its own). Raises SyntaxError otherwise."""
    [stmt] = ast.parse(source).body
    table = symtable.symtable(source, "<statement>", "exec")
    now = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    binds = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    later: set[str] = set()
    _scope_reads(table, now, later, deferred=False)
    stores, calls_on, calls, methods = set(), set(), set(), set()
    for node in _exec_time_nodes(stmt):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            now.add(node.target.id)  # the symbol table does not count `n += 1` as reading n
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for element in ast.walk(target):
                    if isinstance(element, ast.Attribute | ast.Subscript) and isinstance(element.ctx, ast.Store):
                        name = _root_name(element)
                        if name is not None:
                            stores.add(name)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if isinstance(node.value.func, ast.Attribute):
                name = _root_name(node.value.func)
                if name is not None:
                    calls_on.add(name)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                calls.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                methods.add(node.func.attr)
    simple = ast.Assign | ast.AnnAssign | ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef
    unconditional = isinstance(stmt, simple | ast.ClassDef) and not (isinstance(stmt, ast.AnnAssign) and not stmt.value)
    fresh = binds - now if unconditional else set()
    return Names(
        frozenset(binds), frozenset(fresh), frozenset(stores), frozenset(calls_on),
        frozenset(now), frozenset(later), frozenset(calls), frozenset(methods),
    )


# ---------------------------------------------------------------------------------------------- the assignment
def provided_definitions() -> dict[str, str | None]:
    """Names the provided cells define at top level (also inside `if` blocks), each with the `ast.dump` of
    its definition (None for assignments). A student may not replace them: the grader runs the canonical
    provided code whatever the notebook did to its copy."""
    names: dict[str, str | None] = {}
    pending = list(ast.parse(provided_code()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update((n.id, None) for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for part in ("body", "orelse", "finalbody", "handlers"):
                pending.extend(getattr(node, part, []))
        elif isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)
    return names


@dataclass(frozen=True)
class AssignmentFacts:
    """What the assignment source says about names: who supplies them and which are notebook state."""

    provided: dict[str, str | None]  # provided_definitions()
    supplied: frozenset[str]  # every name the provided code binds, its imports included
    graded: frozenset[str]  # defined by the graded cells: the names the suites grade
    state: dict[str, str]  # bound by the notebook's own (neither provided nor graded) cells -> that statement
    runs: frozenset[str]  # assignment functions those cells apply to the data or to trained models


def _describe_statement(stmt: ast.stmt) -> str:
    text = " ".join(ast.unparse(stmt).split("\n")[0].split())
    return text if len(text) <= 60 else text[:59] + "…"


FACTS_FILE = SOURCE_FILE.with_name("facts.json")  # written into the student package, which has no ps7.py


@functools.cache
def assignment_facts() -> AssignmentFacts:
    """Derived from `autograder/assignment/ps7.py`: the notebook cells the grader never runs (data loading,
    the training and evaluation calls) define what notebook state is. Only names and the template's text are
    used (cells rendered without their solutions), so the facts can ship where the solution may not: where
    the source is absent (the student package), they are read from the copy `student-package` wrote."""
    if not SOURCE_FILE.is_file() and FACTS_FILE.is_file():
        return facts_from_json(FACTS_FILE.read_text())
    cells = [cell for cell in read_source_cells() if cell.kind == "code"]
    provided = provided_definitions()
    supplied = set(provided) | statement_names_of_module(provided_code())
    graded: set[str] = set()
    functions: set[str] = set()
    notebook: list[ast.stmt] = []
    for cell in cells:
        body = ast.parse(render(cell.text, solution=False)).body
        if "graded" in cell.tags:
            graded.update(n.name for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))
        if cell.provided or "graded" in cell.tags:
            functions.update(n.name for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
        else:
            notebook.extend(body)
    state: dict[str, str] = {}
    for stmt in notebook:
        for name in statement_names(ast.unparse(stmt)).binds - supplied - {"_"}:
            state[name] = _describe_statement(stmt)
    runs = set()
    for stmt in notebook:
        for node in _exec_time_nodes(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
                arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
                if any(isinstance(n, ast.Name) and n.id in state for arg in arguments for n in ast.walk(arg)):
                    runs.add(node.func.id)
    return AssignmentFacts(provided, frozenset(supplied), frozenset(graded), state, frozenset(runs))


def facts_to_json(facts: AssignmentFacts) -> str:
    document = {
        "provided": facts.provided,
        "supplied": sorted(facts.supplied),
        "graded": sorted(facts.graded),
        "state": facts.state,
        "runs": sorted(facts.runs),
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def facts_from_json(text: str) -> AssignmentFacts:
    document = json.loads(text)
    return AssignmentFacts(
        dict(document["provided"]),
        frozenset(document["supplied"]),
        frozenset(document["graded"]),
        dict(document["state"]),
        frozenset(document["runs"]),
    )


def statement_names_of_module(source: str) -> set[str]:
    """Every name a module binds at top level (in any block), as its symbol table says."""
    table = symtable.symtable(source, "<module>", "exec")
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


# ---------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Part:
    """One thing the worker loads on its own, under its own time budget: a definition or a statement."""

    name: str  # the definition's name, or "cell C, line L" for a statement
    source: str
    cell: CellRef
    lineno: int
    binds: tuple[str, ...] = ()
    label: str = ""  # how a statement is named to the student

    def request(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "filename": self.cell.filename,
            "lineno": self.lineno,
            "binds": list(self.binds),
            "label": self.label or f"`{self.name}`",
        }


@dataclass(frozen=True)
class LoadPlan:
    """What the worker loads of a submission, in notebook order, and what it deliberately leaves out."""

    imports: str  # the guarded imports module (`Submission.module_source(set())`)
    parts: list[Part]
    not_run: dict[str, str] = field(default_factory=dict)  # name -> why no statement binding it runs
    notes: list[str] = field(default_factory=list)  # changes to the provided code, which the grader ignores
    diagnostics: list[str] = field(default_factory=list)  # which definition was graded, what was run, left out


@dataclass
class _Unit:
    index: int
    kind: str  # "import", "definition", "statement"
    name: str
    cell: CellRef
    lineno: int
    source: str
    label: str
    names: Names
    state: str | None = None  # why this statement is not run

    @property
    def place(self) -> str:
        return f"{self.cell}, line {self.lineno}"


def _short(source: str) -> str | None:
    text = source.strip()
    return text if "\n" not in text and len(text) <= 60 else None


def _label(statement: Statement) -> str:
    """The statement itself when it is one short line, else extract's few words ("try block")."""
    return _short(statement.source) or statement.label


def _units(submission: Submission, supplied: frozenset[str]) -> tuple[list[_Unit], list[str]]:
    """The imports, definitions and statements in notebook order, with their names; and the definitions of
    names the provided code supplies (never loaded, so not analysed: a student copy of the provided cells
    would otherwise cost most of the analysis)."""
    raw: list[tuple[str, str, CellRef, int, str, str]] = []
    raw += [("import", s.source, s.cell, s.lineno, s.source, s.source) for s in submission.imports]
    raw += [
        ("definition", d.name, d.cell, d.lineno, d.source, d.name)
        for d in submission.definitions.values()
        if d.name not in supplied
    ]
    raw += [("statement", f"{s.cell}, line {s.lineno}", s.cell, s.lineno, s.source, _label(s))
            for s in submission.statements]
    raw.sort(key=lambda item: (item[2], item[3]))  # stable: an import before a statement on its line
    units = []
    for kind, name, cell, lineno, source, label in raw:
        try:
            names = statement_names(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        units.append(_Unit(len(units), kind, name, cell, lineno, source, label, names))
    return units, [name for name in submission.definitions if name in supplied]


def _training_functions(units: list[_Unit], facts: AssignmentFacts) -> set[str]:
    """The assignment's runs, and the student's functions that call one, directly or through each other."""
    runs = set(facts.runs)
    functions = {u.name: u.names.later | u.names.calls for u in units if u.kind == "definition"}
    changed = True
    while changed:
        changed = False
        for name, reads in functions.items():
            if name not in runs and reads & runs:
                runs.add(name)
                changed = True
    return runs


def _mark_state(units: list[_Unit], facts: AssignmentFacts, runs: set[str]) -> None:
    """Decide, in notebook order, which statements need the data, training or notebook state."""
    derived: dict[str, str] = {}  # names such statements bound -> where
    for unit in units:
        names = unit.names
        if unit.kind == "statement":
            why = None
            reads = names.now | names.later
            if hit := sorted(names.binds & facts.state.keys()):
                why = f"which the notebook's own cells bind (`{facts.state[hit[0]]}`)"
            elif hit := sorted(reads & facts.state.keys()):
                why = f"from `{hit[0]}`, which the notebook's own cells make (`{facts.state[hit[0]]}`)"
            elif hit := sorted(reads & derived.keys()):
                why = f"from `{hit[0]}`, {derived[hit[0]]}"
            elif hit := sorted(names.calls & runs):
                why = f"by calling `{hit[0]}`, which the notebook runs on its data or trained models"
            elif hit := sorted(names.methods & TRAINING_METHODS):
                why = f"by calling `.{hit[0]}(...)`, which trains"
            if why is not None:
                unit.state = why
                derived.update((name, f"which {unit.place} binds from notebook state") for name in names.binds)
                continue
        for name in names.binds:
            derived.pop(name, None)


def _binders(units: list[_Unit], name: str, before: int) -> list[_Unit]:
    """The statements that give `name` its value as of `before`: the last unconditional binding and every
    later update of it (after an import or a definition, only rebindings and stores count)."""
    found = [u for u in units[:before] if name in u.names.binds | u.names.stores | u.names.calls_on]
    start = max((i for i, u in enumerate(found) if name in u.names.fresh), default=0)
    chain = found[start:]
    if chain and name in chain[0].names.fresh and chain[0].kind != "statement":
        keep_stores = chain[0].kind == "definition"
        chain = chain[:1] + [
            u for u in chain[1:] if name in u.names.binds or (keep_stores and name in u.names.stores)
        ]
    return chain


def _why_not_run(unit: _Unit) -> str:
    return f"bound in {unit.place} (`{unit.label}`) {unit.state}; {_RULE}"


def load_plan(submission: Submission, facts: AssignmentFacts | None = None) -> LoadPlan:
    """The parts to load (student definitions, and the statements graded definitions need), in cell order,
    and the names left out on purpose with the reason."""
    facts = facts or assignment_facts()
    units, provided_copies = _units(submission, facts.supplied)
    _mark_state(units, facts, _training_functions(units, facts))
    provided = facts.provided
    notes: list[str] = []
    diagnostics: list[str] = []
    superseded = {
        unit.index
        for unit in units
        if unit.kind == "definition"
        and any(u.kind == "statement" and unit.name in u.names.fresh for u in units[unit.index + 1 :])
    }
    kept: set[int] = set()
    reasons: dict[str, str] = {}  # names left out -> why
    uses: dict[str, list[str]] = {}  # graded name -> not-run names it needs
    runs_for: dict[int, tuple[str, str]] = {}  # kept statement -> (graded name, name it binds for it)
    for root in sorted(facts.graded):
        pending, seen = [(root, _END)], set()
        while pending:
            name, before = pending.pop()
            if (name, before) in seen or name in facts.supplied:
                continue
            seen.add((name, before))
            chain = _binders(units, name, before)
            blocked = next((u for u in chain if u.state is not None and name in u.names.binds), None)
            if blocked is not None:
                reasons.setdefault(name, _why_not_run(blocked))
                if name not in uses.setdefault(root, []):
                    uses[root].append(name)
                continue
            for unit in chain:
                if unit.state is not None or unit.index in kept:
                    continue
                kept.add(unit.index)
                if unit.kind == "statement":
                    runs_for.setdefault(unit.index, (root, name))
                pending.extend((read, unit.index) for read in unit.names.now)
                pending.extend((read, _END) for read in unit.names.later)
    for name in provided_copies:
        definition = submission.definitions[name]
        if definition.kind != "constant" and not _same_code(definition.source, provided.get(name)):
            notes.append(
                f"{definition.cell}: you changed the provided `{name}`; the grader uses the provided version"
            )
    parts: list[Part] = []
    for unit in units:
        if unit.kind == "definition":
            definition = submission.definitions[unit.name]
            if unit.index not in superseded:
                shown = _short(unit.source) or f"{unit.name} = ..."
                label = f"the definition in {unit.place}"
                if definition.kind == "constant":
                    label = f"{unit.place} (`{shown}`)"
                parts.append(Part(unit.name, unit.source, unit.cell, unit.lineno, (unit.name,), label))
        elif unit.kind == "statement" and unit.index in kept:
            binds = tuple(sorted(unit.names.binds - facts.supplied))
            parts.append(Part(unit.name, unit.source, unit.cell, unit.lineno, binds, f"{unit.place} (`{unit.label}`)"))
            root, name = runs_for[unit.index]
            diagnostics.append(f"{unit.place}: `{unit.label}` was run by the grader, because `{root}` uses `{name}`")
    for root in sorted(facts.graded):
        places = submission.redefinitions.get(root)
        if places:
            where = ", ".join(f"{cell}, line {line}" for cell, line in places)
            diagnostics.append(
                f"`{root}` is defined {len(places)} times ({where}): the grader graded the last one, in {places[-1][0]}"
            )
        diagnostics.extend(f"`{root}` uses `{name}`, {reasons[name]}" for name in uses.get(root, []))
    not_run = {name: f"`{name}` is {why}" for name, why in reasons.items()}
    return LoadPlan(submission.module_source(set()), parts, not_run, notes, diagnostics)


def _same_code(source: str, dump: str | None) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return dump is not None and len(body) == 1 and ast.dump(body[0]) == dump
