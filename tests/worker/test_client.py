"""The trusted client against a real sandboxed worker holding a hostile notebook.

One worker serves the whole module; tests that kill it come in file order, each followed by a call
that must work on a fresh worker, so every restart is paid once (the oversized answer, which also
discards the worker, comes last).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from autograder.ingest import ingest
from autograder.ingest.dependencies import load_plan, provided_definitions
from autograder.worker.client import Worker

HOSTILE_CELLS = [
    "import ctypes\nimport os\nimport sys\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F",
    # A correct encoder that prints everywhere, including fake protocol lines on fd 1.
    """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        print('{"id": 2, "ok": true, "data": {"parameters": 1}}')
        sys.stderr.write("to stderr\\n")
        os.write(1, b'{"id": 2, "ok": true}\\n')
        os.write(2, b"raw fd 2\\n")
        self.conv1 = nn.Conv2d(in_channels, 12, 4, 2, 1)
        self.conv2 = nn.Conv2d(12, 24, 4, 2, 1)
        self.conv3 = nn.Conv2d(24, 48, 4, 2, 1)
        self.conv4 = nn.Conv2d(48, 24, 4, 2, 1)

    def forward(self, x):
        return F.relu(self.conv4(F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))))""",
    "class Looper(nn.Module):\n    def forward(self, x):\n        while True:\n            pass",
    "class Exiter(nn.Module):\n    def __init__(self):\n        sys.exit(3)",
    "class HardExiter(nn.Module):\n    def __init__(self):\n        os._exit(7)",
    "class Segfault(nn.Module):\n    def __init__(self):\n        ctypes.string_at(0)",
    # Hangs while loading: the class body runs at definition time.
    "class SlowToLoad:\n    while True:\n        pass",
    # Kills the worker while loading: default arguments run at definition time.
    "def crash_on_load(x=os._exit(5)):\n    return x",
    "def fine_helper():\n    return 1",
    """def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for images, _ in dataloader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(images), images)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(dataloader))
    return model, losses""",
    # Redefining provided code: ignored, with a note.
    "class Autoencoder(nn.Module):\n    pass",
]



@pytest.fixture(scope="module")
def worker(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("hostile") / "hostile.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in HOSTILE_CELLS])
    nbformat.write(notebook, path)
    previous = os.environ.get("PS7_CACHE")
    os.environ["PS7_CACHE"] = str(synthetic_cache)
    worker = Worker(ingest(path), call_timeout=60, definition_timeout=2)
    worker.begin()  # as the grading plugin does: the load runs in the background until the first call
    worker.begin()
    assert worker.starts == 1 and worker.alive
    try:
        yield worker
    finally:
        worker.close()
        if previous is None:
            del os.environ["PS7_CACHE"]
        else:
            os.environ["PS7_CACHE"] = previous


def test_provided_names_are_protected_and_changes_noted(worker):
    provided = provided_definitions()
    assert {"Autoencoder", "TensorBatches", "SETUP", "DEVICE", "CLIP_CONFIG", "train_clip"} <= provided.keys()
    assert not {"Encoder", "train_ae", "CLIPModel"} & provided.keys()
    assert any("you changed the provided `Autoencoder`" in note for note in worker.notes)


def test_definitions_that_hang_or_crash_while_loading_cost_only_their_names(worker):
    """The first call waits for the load `begin` started, which a definition kills: it is left out next time."""
    observation = worker.call("encoder_structure")
    assert observation.ok, observation.message
    assert "took longer than 2 s" in worker.load_errors["SlowToLoad"]
    assert "exited with code 5" in worker.load_errors["crash_on_load"]
    assert {"Encoder", "Looper", "fine_helper"} <= set(worker.loaded)
    assert worker.starts == 2  # one restart, without crash_on_load
    missing = worker.call("forward_shape", name="crash_on_load", input_shape=[1])
    assert not missing.ok and "`crash_on_load` could not be loaded from your notebook" in missing.error


def test_student_prints_do_not_corrupt_the_protocol(worker):
    observation = worker.call("encoder_structure")
    assert observation.ok and observation.data["parameters"] == 42_156
    assert '{"id": 2, "ok": true, "data": {"parameters": 1}}' in observation.stdout
    assert "to stderr" in observation.stdout


def test_missing_name_says_so(worker):
    observation = worker.call("forward_shape", name="Decoder", input_shape=[1, 24, 4, 4])
    assert not observation.ok and observation.error == "`Decoder` is not defined in your notebook"


def test_sys_exit_fails_that_call_only(worker):
    starts = worker.starts
    observation = worker.call("forward_shape", name="Exiter", input_shape=[1])
    assert not observation.ok and observation.error == "your code called sys.exit(3)"
    assert "<cell 4>" in observation.traceback
    assert worker.call("encoder_structure").ok and worker.starts == starts


def test_a_hanging_probe_is_killed_and_the_next_call_gets_a_fresh_worker(worker):
    starts = worker.starts
    observation = worker.call("forward_shape", name="Looper", input_shape=[1, 3], timeout=3)
    assert not observation.ok and "did not finish within 3 s" in observation.error
    assert not worker.alive
    assert worker.call("encoder_structure").ok and worker.starts == starts + 1


@pytest.mark.parametrize(("name", "reason"), [("HardExiter", "exited with code 7"), ("Segfault", "killed by SIGSEGV")])
def test_a_dying_worker_fails_that_call_only(worker, name, reason):
    starts = worker.starts
    observation = worker.call("forward_shape", name=name, input_shape=[1])
    assert not observation.ok
    assert observation.error.startswith("the process running your code died during `forward_shape`: ")
    assert reason in observation.error
    assert worker.call("encoder_structure").ok and worker.starts == starts + 1


def test_probe_tensors_cross_the_boundary(worker):
    observation = worker.call("train_ae_one_epoch", images=16, batch_size=8)
    assert observation.ok, observation.message
    weight = observation.tensors["weights.encoder.convolutions.0.weight"]
    assert tuple(weight.shape) == (12, 3, 4, 4) and weight.dtype.is_floating_point
    assert len(observation.data["loss_traj"]) == 1 and observation.data["loss_traj"][0] > 0


def test_an_oversized_answer_is_refused(worker):
    limit = worker.max_response_bytes
    worker.max_response_bytes = 10_000
    try:
        observation = worker.call("train_ae_one_epoch")
    finally:
        worker.max_response_bytes = limit
    assert not observation.ok and "exceeds the limit of 10,000 bytes" in observation.error


def test_student_parts_skip_provided_names_and_keep_cell_positions(tmp_path):
    path = tmp_path / "s.py"
    path.write_text("# %%\nimport torch\n\n# %%\nDEVICE = 'cuda'\n\ndef helper():\n    return 2\n")
    plan = load_plan(ingest(path))
    imports, parts, notes = plan.imports, [part.request() for part in plan.parts], plan.notes
    assert "import torch" in imports
    assert [(part["name"], part["filename"], part["lineno"]) for part in parts] == [("helper", "<cell 2>", 3)]
    assert notes == []  # constants are replaced silently: the provided value is what counts


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox users exist only when the grader runs as root")
def test_concurrent_workers_get_different_sandbox_users_and_do_not_kill_each_other(synthetic_cache, monkeypatch):
    monkeypatch.setenv("PS7_CACHE", str(synthetic_cache))
    first, second = Worker(None), Worker(None)
    try:
        assert first.call("encoder_structure").error.endswith("is not defined in your notebook")
        assert second.call("encoder_structure").error.endswith("is not defined in your notebook")
        assert first._user is not None and second._user is not None
        assert first._user.uid != second._user.uid
        first.close()
        assert second.alive  # closing one run killed its own user's processes only
    finally:
        first.close()
        second.close()
