"""Build the reference notebook and the student template from the one source, or check for drift."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.assignment.source import REPO_ROOT, SOURCE_FILE, read_source_cells, render

REFERENCE_NOTEBOOK = Path("reference/ps7_solution.ipynb")
TEMPLATE_NOTEBOOK = Path("student_template/ps7.ipynb")

_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "accelerator": "GPU",
}


@dataclass(frozen=True)
class Target:
    path: Path  # relative to the repository root
    solution: bool


TARGETS = (Target(REFERENCE_NOTEBOOK, solution=True), Target(TEMPLATE_NOTEBOOK, solution=False))


def build_notebook(solution: bool, source: Path = SOURCE_FILE) -> nbformat.NotebookNode:
    """A valid nbformat 4 notebook with cleared outputs and stable cell ids (so builds are byte-identical)."""
    notebook = nbformat.v4.new_notebook(metadata=_METADATA)
    for index, cell in enumerate(read_source_cells(source)):
        text = render(cell.text, solution=solution)
        cell_id = f"cell-{index:03d}"
        if cell.kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(text, id=cell_id))
        else:
            metadata = {"tags": list(cell.tags)} if cell.tags else {}
            notebook.cells.append(nbformat.v4.new_code_cell(text, id=cell_id, metadata=metadata))
    nbformat.validate(notebook)
    return notebook


def notebook_text(solution: bool, source: Path = SOURCE_FILE) -> str:
    return nbformat.writes(build_notebook(solution, source)) + "\n"


def write_all(root: Path = REPO_ROOT) -> list[Path]:
    written = []
    for target in TARGETS:
        path = root / target.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(notebook_text(target.solution))
        written.append(path)
    return written


def find_drift(root: Path = REPO_ROOT) -> list[Path]:
    """Committed notebooks that differ from what the build produces (missing ones included)."""
    drifted = []
    for target in TARGETS:
        path = root / target.path
        if not path.is_file() or path.read_text() != notebook_text(target.solution):
            drifted.append(path)
    return drifted
