"""A worker begun before its submission is known (`check --watch` starts the next one while the student edits)
is, once assigned the submission, the worker that submission would have had: the same parts loaded, the same
explanations for the names the grader does not run, the same restarts when a part kills it."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from autograder.ingest import ingest
from autograder.worker.client import Worker, WorkerError
from tests.worker.test_statements import CELLS


@pytest.fixture
def notebook(synthetic_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(os.environ, "PS7_CACHE", str(synthetic_cache))
    path = tmp_path / "statements.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), path)
    return path


def test_a_spare_assigned_a_submission_loads_it_and_explains_what_it_does_not_run(notebook: Path):
    spare = Worker(None, call_timeout=60, definition_timeout=2)
    try:
        spare.begin()  # the imports and the provided code, before the notebook is read
        spare.assign(ingest(notebook))
        assert spare.call("encoder_structure").data["parameters"] == 42_156
        assert spare.starts == 2 and "cell 13, line 1" in spare.load_errors  # the part that killed it left out
        observation = spare.call("train_classifier_one_epoch", supervised=False, images=16, batch_size=8)
        assert observation.error.startswith("NameError: name 'scale' is not defined: `scale` is bound in cell 5")
        arguments = {"model": 0, "image_embeddings": 0, "query": "", "image_filenames": []}
        killed = spare.call("forward_shape", name="retrieve_images", init_args=arguments, input_shape=[1, 3, 64, 64])
        assert "`killer` is bound by cell 13, line 1 (`killer = os._exit(9)`), which stopped the process" in (
            killed.error
        )
    finally:
        spare.close()


def test_a_worker_that_has_loaded_a_submission_cannot_be_given_another(notebook: Path):
    worker = Worker(None, call_timeout=60)
    try:
        worker.start()  # loaded: the provided code and no student part
        with pytest.raises(WorkerError, match="only before it loads one"):
            worker.assign(ingest(notebook))
    finally:
        worker.close()
    with Worker(ingest(notebook), definition_timeout=2) as given:
        with pytest.raises(WorkerError, match="only before it loads one"):
            given.assign(ingest(notebook))
