"""The committed reference notebook and student template: built from the one source, same interfaces."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.assignment.build import REFERENCE_NOTEBOOK, TARGETS, TEMPLATE_NOTEBOOK, find_drift
from autograder.assignment.source import BEGIN, END, REPO_ROOT, TEMPLATE, read_source_cells, render

REPORT_KEYS = ("method 1 accuracy", "method 2 accuracy", "method 3 accuracy", "CLIP accuracy")
GRADED_NAMES = ("Encoder", "Decoder", "train_ae", "train_classifier", "ProjectionHead", "CLIPModel", "retrieve_images")


def load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(REPO_ROOT / path, as_version=4)


def graded_definitions(notebook) -> dict[str, ast.AST]:
    definitions = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and "graded" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.ClassDef | ast.FunctionDef):
                    definitions[node.name] = node
    return definitions


def functions_of(node: ast.AST) -> list[ast.FunctionDef]:
    """A function, or the methods of a class."""
    if isinstance(node, ast.FunctionDef):
        return [node]
    return [n for n in node.body if isinstance(n, ast.FunctionDef)]


def signatures(node: ast.AST) -> dict[str, str]:
    return {function.name: ast.unparse(function.args) for function in functions_of(node)}


def raises_not_implemented(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(n, ast.Raise) and isinstance(n.exc, ast.Name) and n.exc.id == "NotImplementedError"
        for n in ast.walk(function)
    )


def test_committed_notebooks_match_the_build():
    assert find_drift() == []


def test_check_fails_naming_an_edited_notebook(tmp_path):
    for target in TARGETS:
        (tmp_path / target.path).parent.mkdir(parents=True)
        shutil.copy(REPO_ROOT / target.path, tmp_path / target.path)
    assert find_drift(tmp_path) == []
    edited = tmp_path / TEMPLATE_NOTEBOOK
    notebook = nbformat.read(edited, as_version=4)
    notebook.cells[1].source += "\nprint('edited')"
    nbformat.write(notebook, edited)
    assert find_drift(tmp_path) == [edited]
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "template", "--check", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert str(edited) in result.stderr


@pytest.mark.parametrize("path", [REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK])
def test_notebook_is_valid_nbformat4_without_outputs_and_every_code_cell_parses(path):
    notebook = load(path)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            ast.parse(cell.source)


def test_graded_names_have_identical_signatures():
    reference = graded_definitions(load(REFERENCE_NOTEBOOK))
    template = graded_definitions(load(TEMPLATE_NOTEBOOK))
    assert set(reference) == set(template) == set(GRADED_NAMES)
    for name in GRADED_NAMES:
        assert signatures(reference[name]) == signatures(template[name]), name


def test_template_bodies_raise_and_reference_bodies_do_not():
    reference = graded_definitions(load(REFERENCE_NOTEBOOK))
    template = graded_definitions(load(TEMPLATE_NOTEBOOK))
    for name in GRADED_NAMES:
        for kind, definitions, expected in (("template", template, True), ("reference", reference, False)):
            for function in functions_of(definitions[name]):
                assert raises_not_implemented(function) is expected, f"{kind} {name}.{function.name}"


def test_template_shows_no_solution_line():
    for cell in read_source_cells():
        template_lines = {line.strip() for line in render(cell.text, solution=False).splitlines()}
        in_solution = False
        for line in cell.text.splitlines():
            stripped = line.strip()
            if stripped in (BEGIN, TEMPLATE, END):
                in_solution = stripped == BEGIN
            elif in_solution and len(stripped) > 3:
                assert stripped not in template_lines, f"solution line shown in the template: {stripped}"


def test_method_cells_set_supervised_only_in_the_reference():
    def flags(path):
        found = []
        for cell in load(path).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "train_classifier":
                    found.extend(ast.literal_eval(k.value) for k in node.keywords if k.arg == "supervised")
        return found

    assert flags(REFERENCE_NOTEBOOK) == [False, True, False, False]  # methods I-III, then the CLIP probe
    assert flags(TEMPLATE_NOTEBOOK) == [Ellipsis, Ellipsis, Ellipsis, False]


def test_report_cells_hold_the_parseable_lines():
    def report_lines(path):
        lines = {}
        for cell in load(path).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    key, colon, value = line.partition(":")
                    if colon and key in REPORT_KEYS:
                        lines[key] = value.strip()
        return lines

    reference = report_lines(REFERENCE_NOTEBOOK)
    assert {key: float(value) for key, value in reference.items()} == {
        "method 1 accuracy": 0.320, "method 2 accuracy": 0.435, "method 3 accuracy": 0.258, "CLIP accuracy": 0.802
    }
    assert report_lines(TEMPLATE_NOTEBOOK) == dict.fromkeys(reference, "")


class _StubImageEncoder(nn.Module):
    """Stand-in for the provided ResNet50 encoder, which needs a prepared profile (tested in tests/profiles)."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Flatten(), nn.LazyLinear(8))

    def forward(self, x):
        return self.model(x)


class _StubTextEncoder(nn.Module):
    """Stand-in for the provided DistilBERT encoder: an embedding of the first token."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(50, 6)

    def forward(self, input_ids, attention_mask):
        return self.embedding(input_ids[:, 0])


def _stub_tokenizer(texts, **kwargs):
    ids = torch.tensor([[len(text) % 50, 1] for text in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def graded_namespace(path: Path) -> dict:
    """Run the graded cells of a notebook with the provided names they use (stubs for the backbones)."""
    import numpy as np
    from tqdm import tqdm

    namespace = {
        "torch": torch, "nn": nn, "F": F, "np": np, "tqdm": tqdm,
        "ImageEncoder": _StubImageEncoder, "TextEncoder": _StubTextEncoder, "TOKENIZER": _stub_tokenizer,
    }
    for cell in load(path).cells:
        if cell.cell_type == "code" and "graded" in cell.metadata.get("tags", []):
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


def exercise(namespace: dict) -> None:
    """Call every graded name once on tiny inputs."""
    torch.manual_seed(0)
    images = torch.rand(4, 3, 64, 64)
    encoder, decoder = namespace["Encoder"](), namespace["Decoder"]()
    assert decoder(encoder(images)).shape == images.shape
    model = nn.Sequential(encoder, decoder)
    _, losses = namespace["train_ae"](model, [(images, torch.full((4,), -1))], epochs=2)
    assert len(losses) == 2
    cls = nn.Linear(24 * 4 * 4, 10)
    _, losses = namespace["train_classifier"](encoder, cls, [(images, torch.arange(4))], epochs=1, supervised=True)
    assert len(losses) == 1
    assert namespace["ProjectionHead"](5, 3)(torch.rand(2, 5)).shape == (2, 3)
    clip = namespace["CLIPModel"](temperature=0.07, image_embedding=8, text_embedding=6)
    batch = {"image": images, "input_ids": torch.randint(0, 50, (4, 2)), "attention_mask": torch.ones(4, 2)}
    assert clip(batch).dim() == 0
    matches = namespace["retrieve_images"](clip, torch.rand(5, 256), "a query", list("abcde"), k=3)
    assert len(matches) == 3


def test_reference_graded_code_runs():
    exercise(graded_namespace(REFERENCE_NOTEBOOK))


def test_template_graded_code_raises_not_implemented():
    namespace = graded_namespace(TEMPLATE_NOTEBOOK)
    with pytest.raises(NotImplementedError):
        namespace["Encoder"]()
    with pytest.raises(NotImplementedError):
        namespace["Decoder"]()
    with pytest.raises(NotImplementedError):
        namespace["train_ae"](nn.Conv2d(3, 3, 1), [(torch.rand(1, 3, 8, 8), None)], epochs=1)
    with pytest.raises(NotImplementedError):
        namespace["train_classifier"](nn.Conv2d(3, 3, 1), nn.Linear(3, 2), [], epochs=1)
    with pytest.raises(NotImplementedError):
        namespace["ProjectionHead"](4)
    with pytest.raises(NotImplementedError):
        namespace["CLIPModel"]()
    with pytest.raises(NotImplementedError):
        namespace["retrieve_images"](None, torch.rand(2, 4), "query", ["a", "b"], k=1)
