"""The `retrieve` probe reads a returned sequence as the statement reads it: a list, a tuple, a NumPy array, or
anything else with a `tolist()` (a pandas Series; pandas is not a dependency here, so a class with the same
`tolist()` stands in for it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.worker.probes import PROBES, ProbeContext
from autograder.worker.protocol import encode_tensors

STUDENT_CELL = """\
import numpy as np
import torch


class SeriesLike:
    def __init__(self, values):
        self._values = list(values)

    def tolist(self):
        return list(self._values)


def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    text_features = model.text_encoder(input_ids=torch.ones(1, 3, dtype=torch.long))
    scores = (image_embeddings @ model.text_projection(text_features).T).squeeze(1)
    best = torch.topk(scores, k).indices.numpy()
    names = np.asarray(image_filenames)[best]
    return {RETURNED}
"""

RETURNS = {
    "list": "names.tolist()",
    "tuple": "tuple(names)",
    "numpy array": "names",
    "pandas-like Series": "SeriesLike(names)",
}


@pytest.mark.parametrize("returned", RETURNS.values(), ids=RETURNS.keys())
def test_any_sequence_of_filenames_is_read_as_its_items(returned):
    namespace: dict = {}
    exec(compile(STUDENT_CELL.replace("{RETURNED}", returned), "<cell 3>", "exec"), namespace)
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "image_embeddings": F.normalize(torch.randn(20, 8, generator=generator), dim=-1),
        "text_features": torch.randn(1, 16, generator=generator),
        "weight": torch.randn(8, 16, generator=generator),
        "bias": torch.randn(8, generator=generator),
    }
    query = F.normalize(tensors["text_features"] @ tensors["weight"].T + tensors["bias"], dim=-1)
    best = torch.topk((tensors["image_embeddings"] @ query.T).squeeze(1), 4).indices.tolist()
    filenames = [f"image_{index}.jpg" for index in range(20)]
    observed = PROBES["retrieve"](
        ProbeContext(namespace), tensors=encode_tensors(tensors), query="a dog", filenames=filenames, k=4
    )
    assert observed["items"] == [filenames[index] for index in best]
    assert all(type(item) is str for item in observed["items"])
    assert observed["text_encoder_calls"] == 1


def test_a_single_string_is_not_read_as_a_sequence_of_its_characters():
    namespace: dict = {}
    exec(compile(STUDENT_CELL.replace("{RETURNED}", "str(names[0])"), "<cell 3>", "exec"), namespace)
    tensors = {
        "image_embeddings": F.normalize(torch.randn(5, 8), dim=-1),
        "text_features": torch.randn(1, 16),
        "weight": torch.randn(8, 16),
        "bias": torch.randn(8),
    }
    observed = PROBES["retrieve"](
        ProbeContext(namespace), tensors=encode_tensors(tensors), query="q", filenames=list("abcde"), k=1
    )
    assert observed["items"] is None and observed["type"] == "str"

