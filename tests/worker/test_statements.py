"""Top-level statements the graded definitions need, run by a real sandboxed worker: the ones that work are
there when a probe calls the student's code; one that loops forever, raises, allocates without bound or kills
the worker costs only the definitions that use what it binds, each with a message naming it."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from autograder.ingest import ingest
from autograder.worker.client import Worker

CELLS = [
    "import os\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F",
    'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")\nmse = nn.MSELoss()',
    """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 12, 4, 2, 1)
        self.conv2 = nn.Conv2d(12, 24, 4, 2, 1)
        self.conv3 = nn.Conv2d(24, 48, 4, 2, 1)
        self.conv4 = nn.Conv2d(48, 24, 4, 2, 1)

    def forward(self, x):
        return F.relu(self.conv4(F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))))""",
    """def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for images, _ in dataloader:
            images = images.to(device)
            optimizer.zero_grad()
            loss = mse(model(images), images)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(dataloader))
    return model, losses""",
    "scale = float(method1_accuracy)",  # a result of the notebook's own training cells
    "def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):\n    return cls, [scale]",
    "def spin():\n    while True:\n        pass\n\nlooping = spin()",
    "class Decoder(nn.Module):\n    def __init__(self, out_channels=3, feat_dim=64):\n        super().__init__()\n"
    "        self.size = looping",
    "broken = 1 / 0",
    "class ProjectionHead(nn.Module):\n    def __init__(self, embedding_dim, projection_dim=256):\n"
    "        super().__init__()\n        self.size = broken",
    "huge = bytearray(1 << 40)",
    "class CLIPModel(nn.Module):\n    def __init__(self, temperature=0.07):\n        super().__init__()\n"
    "        self.size = huge",
    "killer = os._exit(9)",
    "def retrieve_images(model, image_embeddings, query, image_filenames, k=9):\n    return killer",
]


@pytest.fixture(scope="module")
def worker(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("statements") / "statements.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), path)
    previous = os.environ.get("PS7_CACHE")
    os.environ["PS7_CACHE"] = str(synthetic_cache)
    worker = Worker(ingest(path), call_timeout=60, definition_timeout=2)
    try:
        yield worker
    finally:
        worker.close()
        if previous is None:
            del os.environ["PS7_CACHE"]
        else:
            os.environ["PS7_CACHE"] = previous


def test_statements_the_graded_definitions_use_are_run_and_work(worker):
    assert worker.call("encoder_structure").data["parameters"] == 42_156  # the student's own part first, as graded
    observation = worker.call("train_ae_one_epoch", images=16, batch_size=8)
    assert observation.ok, observation.message
    assert len(observation.data["loss_traj"]) == 1 and observation.data["loss_traj"][0] > 0
    assert worker.starts == 2  # the statement that killed the first worker was left out of the second
    assert "cell 2, line 1" in [part["name"] for part in worker._parts]
    assert not {"cell 2, line 1", "cell 2, line 2"} & set(worker.load_errors)


def test_a_statement_that_needs_notebook_state_is_not_run_and_the_name_error_says_why(worker):
    observation = worker.call("train_classifier_one_epoch", supervised=False, images=16, batch_size=8)
    assert not observation.ok
    assert observation.error.startswith("NameError: name 'scale' is not defined: `scale` is bound in cell 5, line 1")
    made = "from `method1_accuracy`, which the notebook's own cells make (`method1_accuracy = test("
    assert made in observation.error
    assert "graded code must not depend on the data, on training or on other notebook state" in observation.error


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("Decoder", {}, "`looping` is bound by cell 7, line 5 (`looping = spin()`), which failed when the grader "
         "ran it: loading it took longer than 2 s"),
        ("ProjectionHead", {"embedding_dim": 4}, "`broken` is bound by cell 9, line 1 (`broken = 1 / 0`), which "
         "failed when the grader ran it: ZeroDivisionError: division by zero"),
        ("CLIPModel", {}, "`huge` is bound by cell 11, line 1 (`huge = bytearray(1 << 40)`), which failed when the "
         "grader ran it: MemoryError"),
        ("retrieve_images", {"model": 0, "image_embeddings": 0, "query": "", "image_filenames": []},
         "`killer` is bound by cell 13, line 1 (`killer = os._exit(9)`), which stopped the process running your "
         "code when the grader ran it (exited with code 9)"),
    ],
)
def test_a_statement_that_hangs_raises_exhausts_memory_or_kills_costs_only_its_dependents(worker, name, args, expected):
    observation = worker.call("forward_shape", name=name, init_args=args, input_shape=[1, 3, 64, 64])
    assert not observation.ok
    assert observation.error.startswith("NameError: name "), observation.error
    assert expected in observation.error
    assert worker.alive  # a failed statement cost its dependents only, not the worker
