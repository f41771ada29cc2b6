"""The notebooks executed top to bottom by nbclient on the prepared synthetic profile, offline."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.assignment.build import REFERENCE_NOTEBOOK, REPO_ROOT, TEMPLATE_NOTEBOOK

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def execute(path, monkeypatch, cache):
    monkeypatch.setenv("PS7_PROFILE", "synthetic")
    monkeypatch.setenv("PS7_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(REPO_ROOT / path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cache)}})
    return notebook, client


def test_reference_notebook_runs_top_to_bottom(monkeypatch, synthetic_cache):
    notebook, client = execute(REFERENCE_NOTEBOOK, monkeypatch, synthetic_cache)
    client.execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    for line in ("Method I accuracy:", "Method II accuracy:", "Method III accuracy:", "CLIP linear probe accuracy:"):
        assert line in printed


def test_template_runs_until_its_first_not_implemented_error(monkeypatch, synthetic_cache):
    notebook, client = execute(TEMPLATE_NOTEBOOK, monkeypatch, synthetic_cache)
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        client.execute()
    failed = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and any(output.get("output_type") == "error" for output in cell.outputs)
    ]
    assert len(failed) == 1
    assert "train_ae(" in notebook.cells[failed[0]].source  # the first cell that calls student code
