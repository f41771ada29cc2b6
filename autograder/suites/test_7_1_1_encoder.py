"""7.1.1 Encoder (1 point): structure, output shapes, parameter count and output range of `Encoder()` (public);
outputs equal to the reference's under the same weights (hidden)."""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autograder.grading.copies import refuse_copy
from autograder.grading.structure import confirm, convolutions_check
from autograder.worker.protocol import encode_tensors
from autograder.worker.standard import StandardEncoder

CHANNELS = [(3, 12), (12, 24), (24, 48), (48, 24)]
KERNEL, STRIDE, PADDING = [4, 4], [2, 2], [1, 1]
SHAPES = {(2, 3, 64, 64): (2, 24, 4, 4), (2, 3, 32, 32): (2, 24, 2, 2), (2, 3, 96, 96): (2, 24, 6, 6)}
PARAMETERS = 42_156
RANGE_SCALE = 20.0  # inputs far from zero: a missing final ReLU gives clearly negative features
TOLERANCE = 1e-5

LEAKY_SLOPE = 0.02  # a LeakyReLU (slope 0.01 by default) keeps negatives at most this fraction of the largest

pytestmark = pytest.mark.tags("7.1", "autoencoder")


@pytest.fixture(scope="module")
def computes_its_layers(worker, run_seed) -> Callable[[], str | None]:
    """Why the Encoder's structure reports are not confirmed by what it computes on weights and inputs drawn
    afresh here (`autograder.grading.structure`), or None."""
    seed = run_seed + 1
    return convolutions_check(worker, "Encoder", _weights(seed), [2, 3, 64, 64], seed, transposed=False)


@pytest.fixture(autouse=True)
def _own_work(submission):
    """A Encoder that repeats the grader's own StandardEncoder earns nothing (`autograder.grading.copies`)."""
    refuse_copy(submission, "Encoder", StandardEncoder)


def _arrows(pairs: list[tuple[int, int]]) -> str:
    return " → ".join([str(pairs[0][0]), *(str(out) for _, out in pairs)]) if pairs else "no convolutions"


@pytest.mark.points(0.25)
@pytest.mark.number("7.1.1.1")
def test_encoder_convolutions(observe, computes_its_layers):
    """7.1.1 Encoder: four Conv2d layers 3 → 12 → 24 → 48 → 24, kernel 4, stride 2, padding 1"""
    layers = observe("encoder_structure").data["convolutions"]
    kinds = sorted({layer["type"] for layer in layers} - {"Conv2d"})
    assert not kinds, f"expected only nn.Conv2d layers in the encoder; observed {', '.join(kinds)}"
    channels = [(layer["in_channels"], layer["out_channels"]) for layer in layers]
    assert channels == CHANNELS, (
        f"expected {len(CHANNELS)} convolutions with channels {_arrows(CHANNELS)}; observed {len(channels)} "
        f"with channels {'; '.join(f'{a} → {b}' for a, b in channels) or 'none'}"
    )
    for layer in layers:
        observed = (layer["kernel_size"], layer["stride"], layer["padding"])
        assert observed == (KERNEL, STRIDE, PADDING), (
            f"expected kernel 4, stride 2, padding 1 in every convolution; observed in `{layer['name']}`: "
            f"kernel {layer['kernel_size']}, stride {layer['stride']}, padding {layer['padding']}"
        )
    confirm(computes_its_layers())


@pytest.mark.points(0.2)
@pytest.mark.number("7.1.1.2")
def test_encoder_output_shape(observe, computes_its_layers):
    """7.1.1 Encoder: images of 64x64 (and 32x32, 96x96) become features of shape (N, 24, H/16, W/16)"""
    for input_shape, expected in SHAPES.items():
        observed = tuple(observe("forward_shape", name="Encoder", input_shape=list(input_shape)).data["shape"])
        assert observed == expected, (
            f"expected Encoder()(x) for x of shape {input_shape} to have shape {expected}; observed {observed} "
            "(each convolution with kernel 4, stride 2, padding 1 halves the height and width)"
        )
    confirm(computes_its_layers())


@pytest.mark.points(0.15)
@pytest.mark.number("7.1.1.3")
def test_encoder_parameter_count(observe, computes_its_layers):
    """7.1.1 Encoder: 42,156 parameters"""
    observed = observe("encoder_structure").data["parameters"]
    assert observed == PARAMETERS, f"expected {PARAMETERS:,} parameters in Encoder(); observed {observed:,}"
    confirm(computes_its_layers())


@pytest.mark.points(0.1)
@pytest.mark.number("7.1.1.4")
def test_encoder_output_is_non_negative(observe, computes_its_layers):
    """7.1.1 Encoder: features are non-negative (a ReLU after every convolution, the last one too)"""
    observed = observe("forward_shape", name="Encoder", input_shape=[2, 3, 64, 64], scale=RANGE_SCALE).data
    assert observed["finite"], "expected finite features; observed NaN or infinite values"
    leaky = observed["min"] < 0 and -observed["min"] <= LEAKY_SLOPE * max(observed["max"], 0.0)
    cause = (
        "negative values this small beside the largest look like a LeakyReLU's: use ReLU (F.relu or nn.ReLU)"
        if leaky
        else "is the ReLU after the last convolution missing?"
    )
    assert observed["min"] >= 0, (
        f"expected non-negative features (a ReLU after every convolution, the last one too); observed a minimum "
        f"of {observed['min']:.4g}: {cause}"
    )
    confirm(computes_its_layers())


def _weights(seed: int) -> dict[str, torch.Tensor]:
    """The standard encoder's initial convolution weights for `seed`, in the order they are applied."""
    torch.manual_seed(seed)
    encoder = StandardEncoder()
    weights = {}
    for index, convolution in enumerate(encoder.convolutions):
        weights[f"{index}.weight"], weights[f"{index}.bias"] = convolution.weight.detach(), convolution.bias.detach()
    return weights


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _forward(weights: dict[str, torch.Tensor], x: torch.Tensor, activations: list[Callable]) -> torch.Tensor:
    for index, activation in enumerate(activations):
        x = activation(F.conv2d(x, weights[f"{index}.weight"], weights[f"{index}.bias"], stride=2, padding=1))
    return x


MISWIRINGS = {
    "without the ReLU after the last convolution": [F.relu, F.relu, F.relu, _identity],
    "without the ReLU after convolution 1": [_identity, F.relu, F.relu, F.relu],
    "without the ReLU after convolution 2": [F.relu, _identity, F.relu, F.relu],
    "without the ReLU after convolution 3": [F.relu, F.relu, _identity, F.relu],
    "with a Sigmoid instead of the last ReLU": [F.relu, F.relu, F.relu, torch.sigmoid],
}


def _likely_bug(weights: dict[str, torch.Tensor], x: torch.Tensor, observed: torch.Tensor) -> str:
    """The known wiring mistake whose output matches what the student's encoder computed, if any."""
    for description, activations in MISWIRINGS.items():
        y = _forward(weights, x, activations)
        if y.shape == observed.shape and torch.allclose(y, observed, atol=TOLERANCE):
            return f" They match an encoder {description}."
    return ""


@pytest.mark.points(0.3)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.1.5")
def test_encoder_matches_the_reference(observe, reference, run_seed):
    """7.1.1 Encoder: with the reference's weights loaded, outputs equal the reference's"""
    weights = _weights(run_seed)
    args = {"name": "Encoder", "weights": encode_tensors(weights), "input_shape": [4, 3, 64, 64], "seed": run_seed}
    student, expected = observe("forward_with_weights", **args), reference("forward_with_weights", **args)
    y, target = student.tensors["output"], expected.tensors["output"]
    assert y.shape == target.shape, f"expected an output of shape {tuple(target.shape)}; observed {tuple(y.shape)}"
    difference = float((y - target).abs().max())
    assert difference <= TOLERANCE, (
        f"expected the reference's features when your convolutions hold the reference's weights (ReLU after each "
        f"convolution, applied in order 3 → 12 → 24 → 48 → 24); observed values differing by up to "
        f"{difference:.4g}.{_likely_bug(weights, expected.tensors['input'], y)}"
    )
