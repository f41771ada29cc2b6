"""7.1.2 Decoder (1 point): structure, output shapes, parameter count and output range of `Decoder()` (public);
outputs equal to the reference's under the same weights (hidden)."""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autograder.grading.copies import refuse_copy
from autograder.grading.structure import confirm, convolutions_check
from autograder.worker.protocol import encode_tensors
from autograder.worker.standard import StandardDecoder

CHANNELS = [(24, 48), (48, 24), (24, 12), (12, 3)]
KERNEL, STRIDE, PADDING = [4, 4], [2, 2], [1, 1]
SHAPES = {(2, 24, 4, 4): (2, 3, 64, 64), (2, 24, 2, 2): (2, 3, 32, 32), (2, 24, 6, 6): (2, 3, 96, 96)}
PARAMETERS = 42_135
RANGE_SCALE = 1000.0  # features far from zero drive the last layer to values a Sigmoid must squash into [0, 1]
EQUALITY_SCALE = 20.0  # the last layer's values stay where the Sigmoid is far from flat
TOLERANCE = 1e-5

pytestmark = pytest.mark.tags("7.1", "autoencoder")


@pytest.fixture(scope="module")
def computes_its_layers(worker, run_seed) -> Callable[[], str | None]:
    """Why the Decoder's structure reports are not confirmed by what it computes on weights and inputs drawn
    afresh here (`autograder.grading.structure`), or None."""
    seed = run_seed + 1
    return convolutions_check(worker, "Decoder", _weights(seed), [2, 24, 4, 4], seed, transposed=True)


@pytest.fixture(autouse=True)
def _own_work(submission):
    """A Decoder that repeats the grader's own StandardDecoder earns nothing (`autograder.grading.copies`)."""
    refuse_copy(submission, "Decoder", StandardDecoder)


def _arrows(pairs: list[tuple[int, int]]) -> str:
    return " → ".join([str(pairs[0][0]), *(str(out) for _, out in pairs)]) if pairs else "no convolutions"


@pytest.mark.points(0.25)
@pytest.mark.number("7.1.2.1")
def test_decoder_convolutions(observe, computes_its_layers):
    """7.1.2 Decoder: four ConvTranspose2d layers 24 → 48 → 24 → 12 → 3, kernel 4, stride 2, padding 1"""
    layers = observe("decoder_structure").data["convolutions"]
    kinds = sorted({layer["type"] for layer in layers} - {"ConvTranspose2d"})
    assert not kinds, (
        f"expected only nn.ConvTranspose2d layers in the decoder (they upsample; Conv2d downsamples); observed "
        f"{', '.join(kinds)}"
    )
    channels = [(layer["in_channels"], layer["out_channels"]) for layer in layers]
    assert channels == CHANNELS, (
        f"expected {len(CHANNELS)} transposed convolutions with channels {_arrows(CHANNELS)}; observed "
        f"{len(channels)} with channels {'; '.join(f'{a} → {b}' for a, b in channels) or 'none'}"
    )
    for layer in layers:
        observed = (layer["kernel_size"], layer["stride"], layer["padding"])
        assert observed == (KERNEL, STRIDE, PADDING), (
            f"expected kernel 4, stride 2, padding 1 in every transposed convolution; observed in "
            f"`{layer['name']}`: kernel {layer['kernel_size']}, stride {layer['stride']}, padding {layer['padding']}"
        )
    confirm(computes_its_layers())


@pytest.mark.points(0.2)
@pytest.mark.number("7.1.2.2")
def test_decoder_output_shape(observe, computes_its_layers):
    """7.1.2 Decoder: features of shape (N, 24, 4, 4) (and 2x2, 6x6) become images of shape (N, 3, 16h, 16w)"""
    for input_shape, expected in SHAPES.items():
        observed = tuple(observe("forward_shape", name="Decoder", input_shape=list(input_shape)).data["shape"])
        assert observed == expected, (
            f"expected Decoder()(z) for z of shape {input_shape} to have shape {expected}; observed {observed} "
            "(each transposed convolution with kernel 4, stride 2, padding 1 doubles the height and width)"
        )
    confirm(computes_its_layers())


@pytest.mark.points(0.15)
@pytest.mark.number("7.1.2.3")
def test_decoder_parameter_count(observe, computes_its_layers):
    """7.1.2 Decoder: 42,135 parameters"""
    observed = observe("decoder_structure").data["parameters"]
    assert observed == PARAMETERS, f"expected {PARAMETERS:,} parameters in Decoder(); observed {observed:,}"
    confirm(computes_its_layers())


@pytest.mark.points(0.1)
@pytest.mark.number("7.1.2.4")
def test_decoder_output_is_in_the_unit_interval(observe, computes_its_layers):
    """7.1.2 Decoder: pixels lie in [0, 1] (a Sigmoid at the end)"""
    observed = observe("forward_shape", name="Decoder", input_shape=[2, 24, 4, 4], scale=RANGE_SCALE).data
    assert observed["finite"], "expected finite pixel values; observed NaN or infinite values"
    low, high = observed["min"], observed["max"]
    assert low >= 0, (
        f"expected pixels in [0, 1]; observed a minimum of {low:.4g}: is the Sigmoid at the end of the decoder missing?"
    )
    assert high <= 1, (
        f"expected pixels in [0, 1]; observed a maximum of {high:.4g}: the decoder should end with a Sigmoid (a ReLU "
        "at the end keeps values above 1)"
    )
    confirm(computes_its_layers())


def _weights(seed: int) -> dict[str, torch.Tensor]:
    """The standard decoder's initial convolution weights for `seed`, in the order they are applied."""
    torch.manual_seed(seed)
    decoder = StandardDecoder()
    weights = {}
    for index, convolution in enumerate(decoder.convolutions):
        weights[f"{index}.weight"], weights[f"{index}.bias"] = convolution.weight.detach(), convolution.bias.detach()
    return weights


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _relu_then_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(F.relu(x))


def _forward(weights: dict[str, torch.Tensor], z: torch.Tensor, activations: list[Callable]) -> torch.Tensor:
    for index, activation in enumerate(activations):
        weight, bias = weights[f"{index}.weight"], weights[f"{index}.bias"]
        z = activation(F.conv_transpose2d(z, weight, bias, stride=2, padding=1))
    return z


MISWIRINGS = {
    "without the Sigmoid at the end": [F.relu, F.relu, F.relu, _identity],
    "with a ReLU instead of the Sigmoid at the end": [F.relu, F.relu, F.relu, F.relu],
    "with a ReLU before the final Sigmoid": [F.relu, F.relu, F.relu, _relu_then_sigmoid],
    "without the ReLU after layer 1": [_identity, F.relu, F.relu, torch.sigmoid],
    "without the ReLU after layer 2": [F.relu, _identity, F.relu, torch.sigmoid],
    "without the ReLU after layer 3": [F.relu, F.relu, _identity, torch.sigmoid],
    "with a Sigmoid after every layer": [torch.sigmoid] * 4,
}


def _likely_bug(weights: dict[str, torch.Tensor], z: torch.Tensor, observed: torch.Tensor) -> str:
    """The known wiring mistake whose output matches what the student's decoder computed, if any."""
    for description, activations in MISWIRINGS.items():
        y = _forward(weights, z, activations)
        if y.shape == observed.shape and torch.allclose(y, observed, atol=TOLERANCE):
            return f" They match a decoder {description}."
    return ""


@pytest.mark.points(0.3)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.2.5")
def test_decoder_matches_the_reference(observe, reference, run_seed):
    """7.1.2 Decoder: with the reference's weights loaded, outputs equal the reference's"""
    weights = _weights(run_seed)
    args = {
        "name": "Decoder",
        "weights": encode_tensors(weights),
        "input_shape": [4, 24, 4, 4],
        "seed": run_seed,
        "scale": EQUALITY_SCALE,
    }
    student, expected = observe("forward_with_weights", **args), reference("forward_with_weights", **args)
    y, target = student.tensors["output"], expected.tensors["output"]
    assert y.shape == target.shape, f"expected an output of shape {tuple(target.shape)}; observed {tuple(y.shape)}"
    difference = float((y - target).abs().max())
    assert difference <= TOLERANCE, (
        f"expected the reference's images when your transposed convolutions hold the reference's weights (ReLU "
        f"between layers, Sigmoid at the end, applied in order 24 → 48 → 24 → 12 → 3); observed values differing "
        f"by up to {difference:.4g}.{_likely_bug(weights, expected.tensors['input'], y)}"
    )
