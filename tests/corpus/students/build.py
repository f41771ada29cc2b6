"""Build the student-style corpus: `python -m tests.corpus.students.build` rewrites the submissions here.

Each submission is a copy of the student template (`student_template/ps7.ipynb`, the file students get) with
its TODO cells filled in one student's style (`pieces.py`), the cells that student added (imports, `device`,
`criterion`, helpers, shape checks, Colab cruft), the method flags and the report in their words, saved as
a notebook or exported as a `.py` file. Run it again when the template changes; the expected outcome of each
submission is in `expected.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.assignment.source import REPO_ROOT

TEMPLATE = REPO_ROOT / "student_template" / "ps7.ipynb"
FOLDER = Path(__file__).resolve().parent

# A template cell is found by how its source starts.
CELL_STARTS = {
    "imports": "import math",
    "data": "unlabeled_indices",
    "encoder": "class Encoder",
    "decoder": "class Decoder",
    "autoencoder": "class Autoencoder",
    "train_ae": "def train_ae",
    "ae_cell": "ae = Autoencoder()",
    "train_classifier": "def train_classifier",
    "method1": "# Method I:",
    "method2": "# Method II:",
    "method3": "# Method III:",
    "report_71": "### 7.1.5",
    "clip_config": "CLIP_CONFIG",
    "projection": "class ProjectionHead",
    "clip": "class CLIPModel",
    "clip_data": "caption_rows",
    "clip_train": "clip_model = CLIPModel(",
    "probe": "# Linear probe",
    "report_72": "### 7.2.3",
    "retrieve": "@torch.no_grad()\ndef retrieve_images",
    "retrieval_demo": "val_embeddings",
}
FLAG_PLACEHOLDER = "supervised=...,  # TODO: True or False?"
REPORT_71_BLANK = "method 1 accuracy:\nmethod 2 accuracy:\nmethod 3 accuracy:"
REPORT_72_BLANK = "CLIP accuracy:"

Cell = tuple[str, str]  # (cell type, source)


def code(source: str) -> Cell:
    return ("code", source)


def markdown(source: str) -> Cell:
    return ("markdown", source)


@dataclass(frozen=True)
class Student:
    """One submission. `solutions`: the graded cells' sources by template key; `before`/`after`: cells the
    student added around a template cell; `tweaks`: (key, old, new) edits of other cells; `flags`: the
    `supervised` values of the three method cells; `report_71`/`report_72`: what replaces the blank answer
    lines (`report_cell`: answers written in a new markdown cell after the template's, left blank);
    `export`: "ipynb", "percent" (jupytext `# %%`) or "script" (`jupyter nbconvert --to script`)."""

    name: str
    style: str
    solutions: dict[str, str]
    report_71: str
    report_72: str
    before: dict[str, list[Cell]] = field(default_factory=dict)
    after: dict[str, list[Cell]] = field(default_factory=dict)
    tweaks: list[tuple[str, str, str]] = field(default_factory=list)
    flags: tuple[str, str, str] = ("supervised=False,", "supervised=True,", "supervised=False,")
    report_cell: bool = False
    export: str = "ipynb"

    @property
    def filename(self) -> str:
        return self.name + (".ipynb" if self.export == "ipynb" else ".py")


def _key_of(source: str) -> str | None:
    return next((key for key, start in CELL_STARTS.items() if source.startswith(start)), None)


def cells_of(student: Student) -> list[Cell]:
    """The student's notebook, cell by cell."""
    template = nbformat.read(TEMPLATE, as_version=4)
    cells: list[Cell] = []
    seen: set[str] = set()
    for cell in template.cells:
        key = _key_of(cell.source)
        source = cell.source
        if key is not None:
            seen.add(key)
            source = student.solutions.get(key, source)
            for tweaked, old, new in student.tweaks:
                if tweaked == key:
                    if old not in source:
                        raise ValueError(f"{student.name}: {old!r} is not in the {key} cell")
                    source = source.replace(old, new)
            if key.startswith("method"):
                source = source.replace(FLAG_PLACEHOLDER, student.flags[int(key[-1]) - 1])
        cells += student.before.get(key, []) if key else []
        if key == "report_71":
            cells += _report(source, REPORT_71_BLANK, student.report_71, student.report_cell)
        elif key == "report_72":
            cells += _report(source, REPORT_72_BLANK, student.report_72, student.report_cell)
        else:
            cells.append((cell.cell_type, source))
        cells += student.after.get(key, []) if key else []
    unknown = (set(student.solutions) | set(student.before) | set(student.after)) - seen
    if unknown:
        raise ValueError(f"{student.name}: no template cell for {sorted(unknown)}")
    return cells


def _report(source: str, blank: str, answer: str, new_cell: bool) -> list[Cell]:
    if blank not in source:
        raise ValueError(f"the template's report cell no longer holds {blank!r}")
    if new_cell:
        return [markdown(source), markdown(answer)]
    return [markdown(source.replace(blank, answer))]


def write(student: Student, folder: Path = FOLDER) -> Path:
    cells = cells_of(student)
    path = folder / student.filename
    if student.export == "ipynb":
        notebook = nbformat.v4.new_notebook()
        notebook.metadata = {
            "accelerator": "GPU",
            "colab": {"provenance": []},
            "kernelspec": {"display_name": "Python 3", "name": "python3"},
        }
        # Fixed cell ids, so that building again gives the same files.
        notebook.cells = [
            nbformat.v4.new_code_cell(source, id=f"cell-{index}")
            if kind == "code"
            else nbformat.v4.new_markdown_cell(source, id=f"cell-{index}")
            for index, (kind, source) in enumerate(cells, start=1)
        ]
        nbformat.write(notebook, path)
    elif student.export == "percent":
        path.write_text(_percent(cells))
    else:
        path.write_text(_script(cells))
    return path


def _comment(source: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in source.splitlines())


def _comment_magics(source: str) -> str:
    """jupytext comments out magics and shell escapes (`# !pip install ...`) so that the file stays Python."""
    return "\n".join(f"# {line}" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines())


def _percent(cells: list[Cell]) -> str:
    """What `jupytext --to py:percent` writes."""
    header = "# ---\n# jupyter:\n#   jupytext:\n#     text_representation:\n#       format_name: percent\n# ---\n"
    parts = [
        f"# %%\n{_comment_magics(source.rstrip())}" if kind == "code" else f"# %% [markdown]\n{_comment(source)}"
        for kind, source in cells
    ]
    return header + "\n\n" + "\n\n".join(parts) + "\n"


def _ipython(line: str) -> str:
    """nbconvert's translation of magics and shell escapes into Python."""
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    if stripped.startswith("!"):
        return f"{indent}get_ipython().system({stripped[1:]!r})"
    if stripped.startswith("%"):
        name, _, rest = stripped[1:].partition(" ")
        return f"{indent}get_ipython().run_line_magic({name!r}, {rest!r})"
    return line


def _script(cells: list[Cell]) -> str:
    """What `jupyter nbconvert --to script` writes: `# In[n]:` before each code cell, markdown as comments."""
    parts = ["#!/usr/bin/env python\n# coding: utf-8\n"]
    count = 0
    for kind, source in cells:
        if kind == "markdown":
            parts.append(_comment(source) + "\n")
        else:
            count += 1
            body = "\n".join(_ipython(line) for line in source.rstrip().splitlines())
            parts.append(f"# In[{count}]:\n\n\n{body}\n\n")
    return "\n".join(parts)


def main() -> None:
    from tests.corpus.students.roster import STUDENTS

    for stale in [*FOLDER.glob("*.ipynb"), *FOLDER.glob("s[0-9][0-9]_*.py")]:
        stale.unlink()
    for student in STUDENTS:
        print(write(student).relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
