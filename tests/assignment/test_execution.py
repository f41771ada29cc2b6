"""The notebooks executed top to bottom by nbclient on the prepared synthetic profile, offline.

The notebook runs the assignment's budgets (100 autoencoder epochs); these tests run it on a copy of the
synthetic profile with one epoch of everything (same name, so the same prepared data and backbones): what
they check is that every cell runs, not what it learns.
"""

import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.profiles.profile import load_profile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


ONE_EPOCH = {"ae_epochs": 1, "probe_epochs": 1, "clip_epochs": 1}


def execute(path, monkeypatch, cache, folder):
    profile = json.loads(load_profile("synthetic").path.read_text())
    profile["budgets"] = {**profile["budgets"], **ONE_EPOCH}
    one_epoch = folder / "one-epoch.json"
    one_epoch.write_text(json.dumps(profile))
    monkeypatch.setenv("PS7_PROFILE", str(one_epoch))
    monkeypatch.setenv("PS7_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(REPO_ROOT / path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cache)}})
    return notebook, client


def test_reference_notebook_runs_top_to_bottom(monkeypatch, synthetic_cache, tmp_path):
    notebook, client = execute(REFERENCE_NOTEBOOK, monkeypatch, synthetic_cache, tmp_path)
    client.execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    for line in ("Method I accuracy:", "Method II accuracy:", "Method III accuracy:", "CLIP linear probe accuracy:"):
        assert line in printed


def test_template_runs_until_its_first_not_implemented_error(monkeypatch, synthetic_cache, tmp_path):
    notebook, client = execute(TEMPLATE_NOTEBOOK, monkeypatch, synthetic_cache, tmp_path)
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        client.execute()
    failed = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and any(output.get("output_type") == "error" for output in cell.outputs)
    ]
    assert len(failed) == 1
    assert "train_ae(" in notebook.cells[failed[0]].source  # the first cell that calls student code
