"""The import rule of docs/ARCHITECTURE.md, read from the package's source (every import, function-level too).

The trusted side (grading, results, suites) never imports the worker's server, the one module that runs student
code; the worker never imports the trusted side's verdicts, reports or suites, so that nothing the worker holds can
decide a score."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"
TRUSTED = ("grading", "results", "suites")
WORKER_SERVER = "autograder.worker.server"
NOT_FOR_THE_WORKER = ("autograder.grading", "autograder.results", "autograder.suites", "autograder.delivery")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, absolute names; `from a import b` counts as both `a` and `a.b`."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def _within(module: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(module == package or module.startswith(package + ".") for package in packages)


def _sources(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", TRUSTED)
def test_the_trusted_side_never_imports_the_workers_server(folder):
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path) if _within(m, WORKER_SERVER))
        for path in _sources(folder)
    }
    assert not {path: modules for path, modules in offenders.items() if modules}


def test_the_worker_never_imports_the_trusted_side():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path) if _within(m, NOT_FOR_THE_WORKER))
        for path in _sources("worker")
    }
    assert not {path: modules for path, modules in offenders.items() if modules}


def test_the_rule_sees_imports_inside_functions(tmp_path):
    """The reader must not miss a late import, the way the server was once imported back by a probe."""
    source = tmp_path / "late.py"
    source.write_text("def f():\n    from autograder.worker.server import run_probe\n    return run_probe\n")
    assert _within("autograder.worker.server", WORKER_SERVER)
    assert "autograder.worker.server" in imported_modules(source)
