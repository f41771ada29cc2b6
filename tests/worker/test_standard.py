"""The standard parts equal the reference solution: same parameters in the same order (so the same seed
gives the same initial weights) and the same outputs. Component isolation rests on this."""

from __future__ import annotations

import pytest
import torch

from autograder.assignment.namespace import reference_namespace
from autograder.worker.standard import StandardAutoencoder, StandardDecoder, StandardEncoder, StandardProjectionHead


@pytest.fixture(scope="module")
def reference(synthetic_cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        return reference_namespace("synthetic")


@pytest.mark.parametrize(
    ("standard", "name", "args", "input_shape"),
    [
        (StandardEncoder, "Encoder", (), (2, 3, 64, 64)),
        (StandardEncoder, "Encoder", (), (1, 3, 32, 48)),
        (StandardDecoder, "Decoder", (), (2, 24, 4, 4)),
        (StandardAutoencoder, "Autoencoder", (), (2, 3, 64, 64)),
        (StandardProjectionHead, "ProjectionHead", (40,), (5, 40)),
        (StandardProjectionHead, "ProjectionHead", (7, 3), (1, 7)),
    ],
)
def test_same_seed_same_weights_same_outputs(reference, standard, name, args, input_shape):
    torch.manual_seed(11)
    ours = standard(*args)
    torch.manual_seed(11)
    theirs = getattr(reference, name)(*args)
    ours_parameters = [p.detach() for p in ours.parameters()]
    theirs_parameters = [p.detach() for p in theirs.parameters()]
    assert [p.shape for p in ours_parameters] == [p.shape for p in theirs_parameters]
    assert all(torch.equal(a, b) for a, b in zip(ours_parameters, theirs_parameters, strict=True))
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours(x), theirs(x))
