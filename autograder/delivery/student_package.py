"""`student-package --out DIR`: what students get, built from this checkout and holding no secret.

DIR receives the template notebook (`ps7.ipynb`, built from the one source; with `url`, its last cell installs the
wheel from there and checks the notebook itself, `autograder.notebook`) and a wheel that installs the package
`autograder` with the public checks only (`python -m autograder check ps7.ipynb`):

- the modules the public checks import, found by following imports from the entry points (the command line,
  the worker, the notebook's profile seam, the suites' fixtures) and never any of `NEVER_SHIPPED`: no
  solution (`assignment/ps7.py`), no delivery or calibration code;
- the suites with their hidden tests stripped from the suite files' syntax tree at build time, with the
  fixtures, helpers and imports that only hidden tests used, so the package derives from the one set of
  suites and cannot drift from it; the build refuses a public test that needs the reference's outputs;
- the provided code as text (`assignment/provided.py.txt`), which `source.provided_code()` reads when the
  assignment source is absent;
- one profile, `public` (random backbones, a few synthetic images, no thresholds).

The wheel is written with the standard library (a zip with `*.dist-info`), deterministically.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

from autograder.assignment.source import BEGIN, PROVIDED_FILE, REPO_ROOT, SOURCE_FILE, provided_code
from autograder.ingest.dependencies import FACTS_FILE, assignment_facts, facts_to_json

PACKAGE = "autograder"
DISTRIBUTION = "ps7_checks"
PUBLIC_PROFILE_FILE = "autograder/profiles/public.json"
NOTEBOOK_NAME = "ps7.ipynb"
# Entry points of a public check: the command line, the notebook's own check cell, the worker's bootstrap, the seam
# the provided code imports, and the suites' shared modules (the stripped suite files are followed too).
ROOT_MODULES = (
    "autograder.cli",
    "autograder.notebook",
    "autograder.worker.server",
    "autograder.profiles.seam",
    "autograder.suites",
)
# Never in the package, whoever imports them (the command line's handlers of the staff's commands do, lazily).
NEVER_SHIPPED = (
    "autograder.assignment.ps7",
    "autograder.assignment.build",
    "autograder.delivery",
    "autograder.profiles.calibrate",
)
DATA_FILES = ("autograder/suites/pytest.ini", "autograder/results/templates/report.html.j2", PUBLIC_PROFILE_FILE)
HIDDEN = "after_due_date"
# What the template's check cell installs until a TA builds the package with the course's link (`--url`).
CHECKS_URL_PLACEHOLDER = "https://COURSE-SITE/ps7_checks-0.1.0-py3-none-any.whl"
MAIN_MODULE = '''"""`python -m autograder ...` of the student package: the public checks only."""

import sys

from autograder.cli import STUDENT_COMMANDS, main

sys.exit(main(only=STUDENT_COMMANDS))
'''
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Solution lines shorter than this ("if supervised:", "return x") give nothing away and occur in any code.
MIN_SECRET_CHARS = 16
# Shipped files that hold solution lines by design, and why. Component isolation grades the public CLIP and
# train_ae checks next to the grader's standard parts, built from the published specification (the layer table,
# "one Linear layer, L2-normalised"); the 7.2.1 head is two lines, the same as the reference's.
DISCLOSED = {
    "autograder/worker/standard.py": "the standard parts the public checks run the student's code next to",
}


class StudentPackageError(Exception):
    """The package cannot be built without giving something away; the message says what."""


@dataclass(frozen=True)
class StudentPackage:
    notebook: Path
    wheel: Path
    files: dict[str, bytes]  # what the wheel installs, by path ("autograder/...")
    hidden_tests: dict[str, str]  # name of each stripped test -> the name students would see (its docstring)


# ------------------------------------------------------------------------------------------ stripping suites


def _is_hidden(node: ast.stmt) -> bool:
    """A test marked `@pytest.mark.visibility("after_due_date")`."""
    if not isinstance(node, ast.FunctionDef):
        return False
    for decorator in node.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and ast.unparse(decorator.func) == "pytest.mark.visibility"
            and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and decorator.args[0].value == HIDDEN
        ):
            return True
    return False


def _names_used(node: ast.AST) -> set[str]:
    """Names a statement reads, and the fixtures a function requests by its parameters."""
    names = {item.id for item in ast.walk(node) if isinstance(item, ast.Name)}
    for item in ast.walk(node):
        if isinstance(item, ast.FunctionDef):
            names.update(argument.arg for argument in item.args.args + item.args.kwonlyargs)
    return names


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {item.id for target in targets for item in ast.walk(target) if isinstance(item, ast.Name)}
    return set()


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _segment(lines: list[str], node: ast.stmt) -> str:
    """The statement's source with its decorators and the comment lines right above it."""
    start = min([node.lineno, *(item.lineno for item in getattr(node, "decorator_list", []))]) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return "\n".join(lines[start : node.end_lineno])


def _filtered_import(node: ast.Import | ast.ImportFrom, used: set[str]) -> str | None:
    """The import of only the names still used (None when none is), `from __future__` whole."""
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return ast.unparse(node)
    kept = [alias for alias in node.names if (alias.asname or alias.name.split(".")[0]) in used]
    if not kept:
        return None
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=kept))
    return ast.unparse(ast.ImportFrom(module=node.module, names=kept, level=node.level))


def strip_hidden(source: str, needed: set[str] | None = None, *, title: str) -> tuple[str, dict[str, str]]:
    """The module without its hidden tests and without what only they used; and the stripped tests (name ->
    docstring). Kept: every public test (or, when `needed` is given, as for the conftest, the definitions of
    those names), what they reach by name (fixtures by parameter, helpers, constants), other top-level
    statements, and the imports of names still used. The docstring becomes `title`."""
    tree = ast.parse(source)
    lines = source.splitlines()
    body = [node for node in tree.body if not _is_docstring(node)]
    module_hidden = any("pytestmark" in _defined(node) and HIDDEN in ast.unparse(node) for node in body)
    hidden = {
        node.name: (ast.get_docstring(node) or "").strip()
        for node in body
        if _is_hidden(node) or (module_hidden and isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))
    }
    definitions = {name: node for node in body for name in _defined(node)}
    imports = [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
    if needed is None:
        roots = [
            node
            for node in body
            if not isinstance(node, ast.Import | ast.ImportFrom)
            and not _is_hidden(node)
            and not module_hidden
            and (not _defined(node) or any(name.startswith(("test_", "pytestmark")) for name in _defined(node)))
        ]
    else:
        roots = [definitions[name] for name in sorted(needed) if name in definitions]
    kept: list[ast.stmt] = []
    pending = list(roots)
    while pending:
        node = pending.pop()
        if any(node is other for other in kept):
            continue
        kept.append(node)
        pending.extend(definitions[name] for name in _names_used(node) if name in definitions)
    used = set().union(*(_names_used(node) for node in kept)) if kept else set()
    header = "\n".join(text for node in imports if (text := _filtered_import(node, used)) is not None)
    parts = [f'"""{title}"""\n\n{header}']
    parts += [_segment(lines, node) for node in sorted(kept, key=lambda node: node.lineno)]
    stripped = "\n\n\n".join(part for part in parts if part) + "\n"
    compile(stripped, title, "exec")
    return stripped, hidden


def public_suites(root: Path = REPO_ROOT) -> tuple[dict[str, str], dict[str, str]]:
    """The suite folder's Python files as the package ships them (path -> text), and the stripped tests."""
    suites = root / PACKAGE / "suites"
    files: dict[str, str] = {}
    hidden: dict[str, str] = {}
    for path in sorted(suites.glob("test_*.py")):
        text, removed = strip_hidden(
            path.read_text(), title=f"Public checks from {path.name}, hidden tests removed by `student-package`."
        )
        files[f"{PACKAGE}/suites/{path.name}"] = text
        hidden.update(removed)
    needed = set().union(*(_names_used(ast.parse(text)) for text in files.values()))
    conftest, _ = strip_hidden(
        (suites / "conftest.py").read_text(),
        needed,
        title="Fixtures of the public checks, those of hidden tests removed by `student-package`.",
    )
    files[f"{PACKAGE}/suites/conftest.py"] = conftest
    for path in sorted(suites.glob("*.py")):
        if not path.name.startswith("test_") and path.name != "conftest.py":
            files[f"{PACKAGE}/suites/{path.name}"] = path.read_text()
    _refuse_reference_outputs(files)
    return files, hidden


def _refuse_reference_outputs(files: dict[str, str]) -> None:
    """A public test that compares with the reference would need the solution's outputs in the package."""
    for path, text in files.items():
        if not path.startswith(f"{PACKAGE}/suites/test_"):
            continue
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and {"reference", "reference_runner"} & _names_used(node):
                raise StudentPackageError(
                    f"{path}: the public `{node.name}` uses the reference solution; the student package cannot "
                    "give it the reference's outputs. Make it hidden, or compare with a computation of its own."
                )


# ------------------------------------------------------------------------------------------ modules to ship


def _module_file(root: Path, module: str) -> Path | None:
    base = root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _never_shipped(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in NEVER_SHIPPED)


def _imported_modules(text: str) -> set[str]:
    """`autograder` modules a source imports anywhere (functions included), with `from X import sub` modules."""
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def shipped_modules(suites: dict[str, str], root: Path = REPO_ROOT) -> dict[str, str]:
    """Path -> text of every module the entry points and the stripped suites import, with their packages."""
    files: dict[str, str] = {}
    pending = list(ROOT_MODULES)
    for text in suites.values():
        pending.extend(_imported_modules(text))
    provided = provided_code()
    pending.extend(_imported_modules(provided))
    while pending:
        module = pending.pop()
        if _never_shipped(module):
            continue
        parts = module.split(".")
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))  # the packages above
        path = _module_file(root, module)
        if path is None:
            continue  # a name imported from a module, not a module
        name = path.relative_to(root).as_posix()
        if name in files or name in suites:
            continue
        files[name] = path.read_text()
        pending.extend(_imported_modules(files[name]))
    return files


# ------------------------------------------------------------------------------------------ the wheel


def _dependencies(root: Path) -> tuple[str, list[str]]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return project["version"], list(project["dependencies"])


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write_wheel(folder: Path, files: dict[str, bytes], version: str, dependencies: list[str]) -> Path:
    info = f"{DISTRIBUTION}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        "Name: ps7-checks",
        f"Version: {version}",
        "Summary: The public checks of Problem Set 7: `python -m autograder check ps7.ipynb`.",
        "Requires-Python: >=3.10",
        *(f"Requires-Dist: {dependency}" for dependency in dependencies),
    ]
    wheel = [
        "Wheel-Version: 1.0",
        "Generator: autograder student-package",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
    ]
    entries = dict(sorted(files.items()))
    entries[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    entries[f"{info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in entries.items()]
    entries[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return path


# ------------------------------------------------------------------------------------------ the build


def package_files(root: Path = REPO_ROOT) -> tuple[dict[str, bytes], dict[str, str]]:
    """What the wheel installs (path -> bytes), and the hidden tests left out (name -> docstring)."""
    suites, hidden = public_suites(root)
    texts = {**shipped_modules(suites, root), **suites}
    texts[f"{PACKAGE}/__main__.py"] = MAIN_MODULE
    provided = provided_code()
    if any(row.strip() == BEGIN for row in provided.splitlines()):
        raise StudentPackageError(f"the provided cells of {SOURCE_FILE} hold a solution region ({BEGIN})")
    texts[PROVIDED_FILE.relative_to(root).as_posix()] = provided + "\n"
    texts[FACTS_FILE.relative_to(root).as_posix()] = facts_to_json(assignment_facts())
    files = {name: text.encode() for name, text in texts.items()}
    files.update({name: (root / name).read_bytes() for name in DATA_FILES})
    return files, hidden


def template_text(url: str | None = None) -> str:
    """The template notebook; with `url`, its check cell installs the checks from there."""
    from autograder.assignment.build import notebook_text

    text = notebook_text(solution=False)
    if url is None:
        return text
    if any(character in url for character in '"\\\n') or not url.strip():
        raise StudentPackageError(f"--url {url!r}: give the link to the wheel, without quotes or backslashes")
    if text.count(CHECKS_URL_PLACEHOLDER) != 1:
        raise StudentPackageError(f"the template's check cell does not hold {CHECKS_URL_PLACEHOLDER} once")
    return text.replace(CHECKS_URL_PLACEHOLDER, url)


def build_student_package(out: Path, root: Path = REPO_ROOT, url: str | None = None) -> StudentPackage:
    """Write `out/ps7.ipynb` (the template; with `url`, the link its check cell installs the checks from) and
    `out/ps7_checks-VERSION-py3-none-any.whl`."""
    files, hidden = package_files(root)
    version, dependencies = _dependencies(root)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{DISTRIBUTION}-*.whl"):
        old.unlink()
    notebook = out / NOTEBOOK_NAME
    notebook.write_text(template_text(url))
    wheel = _write_wheel(out, files, version, dependencies)
    return StudentPackage(notebook, wheel, files, hidden)


def secret_lines(source: Path = SOURCE_FILE) -> list[str]:
    """The lines of the solution regions that the template does not show anyway (stripped, at least
    `MIN_SECRET_CHARS` long): what a package that gives nothing away holds none of."""
    from autograder.assignment.build import build_notebook

    shown = {row.strip() for cell in build_notebook(solution=False).cells for row in cell.source.splitlines()}
    secret, inside = [], False
    for row in source.read_text().splitlines():
        marker = row.strip().removeprefix("# ").strip() if row.lstrip().startswith("# ###") else row.strip()
        if marker == BEGIN:
            inside = True
        elif marker in ("### TEMPLATE", "### END SOLUTION"):
            inside = False
        elif inside and row.strip():
            text = row.strip() if not row.startswith("#") else row.removeprefix("#").strip()
            if len(text) >= MIN_SECRET_CHARS and text not in shown:
                secret.append(text)
    return secret
