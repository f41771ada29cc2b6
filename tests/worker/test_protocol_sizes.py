"""Real sizes through the boundary: answers far larger than one message's limit cross whole when the test
expects them, and an answer larger than expected is refused before the trusted side reads it.

A real sandboxed worker holds a notebook whose modules return tensors of the real profile's sizes: the
features of STL-10's 5,000 + 8,000 labelled images from ResNet50 (13,000 x 2,048 float32, 106 MB; 142 MB as
base64, which the old one-line protocol refused) and a tensor as large as ResNet50's weights.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision

from autograder.ingest import ingest
from autograder.worker.client import Worker
from autograder.worker.protocol import (
    MAX_RESPONSE_BYTES,
    ProtocolError,
    TensorSpec,
    announced_bytes,
    encode_tensors,
    observation_from_response,
    response_limit,
    tensor_payload,
)

IMAGES = 13_000  # STL-10's labelled train (5,000) and test (8,000) images
WIDTH = 2_048  # ResNet50's features
RESNET50_PARAMETERS = 25_557_032

CELLS = [
    "import torch\nimport torch.nn as nn",
    """class Rows(nn.Module):
    def __init__(self, rows=2, width=3):
        super().__init__()
        self.rows, self.width = rows, width

    def forward(self, x):
        return torch.arange(self.rows * self.width, dtype=torch.float32).reshape(self.rows, self.width)""",
]


@pytest.fixture(scope="module")
def worker(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("sizes") / "sizes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in CELLS]), path)
    previous = os.environ.get("PS7_CACHE")
    os.environ["PS7_CACHE"] = str(synthetic_cache)
    worker = Worker(ingest(path), call_timeout=120)
    try:
        yield worker
    finally:
        worker.close()
        if previous is None:
            del os.environ["PS7_CACHE"]
        else:
            os.environ["PS7_CACHE"] = previous


def _rows(worker: Worker, rows: int, width: int, expect: dict[str, TensorSpec]):
    return worker.call(
        "forward_with_weights",
        expect=expect,
        name="Rows",
        weights=encode_tensors({}),
        input_shape=[1],
        init_args={"rows": rows, "width": width},
    )


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_an_answer_larger_than_expected_is_refused_unread_and_the_next_call_gets_a_fresh_worker(worker):
    """Twice the expected width (213 MB): refused from the announced size, so the grader's peak memory does not
    grow by the answer's size. Runs first in this module, before any large answer raised the peak."""
    assert _rows(worker, 2, 3, {}).ok  # the worker and the grader's imports are up
    peak = _peak_rss_bytes()
    expect = {"output": TensorSpec((IMAGES, WIDTH), frozenset({"F32"}))}
    observation = _rows(worker, IMAGES, 2 * WIDTH, expect)
    assert not observation.ok
    limit = response_limit(expect)
    assert f"exceeds the limit of {limit:,} bytes" in observation.error, observation.error
    assert _peak_rss_bytes() - peak < IMAGES * 2 * WIDTH * 4 // 2
    starts = worker.starts
    assert _rows(worker, 2, 3, {}).ok and worker.starts == starts + 1


def test_real_size_features_cross_whole(worker):
    expect = {
        "output": TensorSpec((IMAGES, None), widest=WIDTH),
        "input": TensorSpec((1,)),
    }
    assert IMAGES * WIDTH * 4 > MAX_RESPONSE_BYTES  # more than one message may carry
    observation = _rows(worker, IMAGES, WIDTH, expect)
    assert observation.ok, observation.message
    features = observation.tensors["output"]
    assert features.shape == (IMAGES, WIDTH) and features.dtype == torch.float32
    assert torch.equal(features[-1, -3:], torch.arange(IMAGES * WIDTH - 3, IMAGES * WIDTH, dtype=torch.float32))


def test_a_weight_sized_answer_crosses_when_declared_and_is_refused_when_not(worker):
    """As many float32 numbers as ResNet50's weights (102 MB): fine with its spec; without one, the default
    limit of one message applies."""
    observation = _rows(worker, 1, RESNET50_PARAMETERS, {"output": TensorSpec((1, RESNET50_PARAMETERS))})
    assert observation.ok, observation.message
    assert observation.tensors["output"].shape == (1, RESNET50_PARAMETERS)
    assert float(observation.tensors["output"][0, -1]) == float(torch.tensor(RESNET50_PARAMETERS - 1.0))
    undeclared = _rows(worker, 1, RESNET50_PARAMETERS, {})
    assert not undeclared.ok and f"exceeds the limit of {MAX_RESPONSE_BYTES:,} bytes" in undeclared.error


def test_resnet50_weights_decode_within_the_limit_their_specs_give():
    """The limit from a state dict's specs admits exactly that state dict; one extra tensor of any size that the
    specs' limit does not cover is refused from the announced size."""
    weights = torchvision.models.resnet50().state_dict()
    expect = {name: TensorSpec(tuple(tensor.shape), frozenset({"F32", "I64"})) for name, tensor in weights.items()}
    payload = tensor_payload(weights)
    limit = response_limit(expect)
    assert announced_bytes({"tensor_bytes": len(payload)}, limit) == len(payload)
    observation = observation_from_response({"ok": True}, limit, expect, payload)
    assert all(torch.equal(observation.tensors[name], tensor) for name, tensor in weights.items())
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        announced_bytes({"tensor_bytes": limit + 1}, limit)
    with pytest.raises(ProtocolError, match="must be a byte count"):
        announced_bytes({"tensor_bytes": -1}, limit)


def test_the_limit_follows_the_expected_shapes_and_dtypes():
    assert response_limit(None) == MAX_RESPONSE_BYTES
    features = TensorSpec((IMAGES, None), widest=WIDTH)
    assert features.max_bytes == IMAGES * WIDTH * 8  # float64 is among the accepted dtypes
    assert response_limit({"train": features}, base=10) == 10 + IMAGES * WIDTH * 8
    assert TensorSpec((3, 4), frozenset({"F16"})).max_bytes == 24
    assert features.problem("train", "F32", [IMAGES, WIDTH + 1]) is not None
    assert features.problem("train", "F32", [IMAGES, WIDTH]) is None
