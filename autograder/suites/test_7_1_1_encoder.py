"""7.1.1 Encoder (1 point, public): structure, output shape and parameter count of `Encoder()`."""

import pytest

CHANNELS = [(3, 12), (12, 24), (24, 48), (48, 24)]
KERNEL, STRIDE, PADDING = [4, 4], [2, 2], [1, 1]
OUTPUT_SHAPE = [2, 24, 4, 4]
PARAMETERS = 42_156

pytestmark = pytest.mark.tags("7.1", "autoencoder")


def _arrows(pairs: list[tuple[int, int]]) -> str:
    return " → ".join([str(pairs[0][0]), *(str(out) for _, out in pairs)]) if pairs else "no convolutions"


@pytest.mark.points(0.4)
@pytest.mark.number("7.1.1.1")
def test_encoder_convolutions(observe):
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


@pytest.mark.points(0.3)
@pytest.mark.number("7.1.1.2")
def test_encoder_output_shape(observe):
    """7.1.1 Encoder: a batch of 64x64 images becomes features of shape (N, 24, 4, 4)"""
    observed = observe("forward_shape", name="Encoder", input_shape=[2, 3, 64, 64]).data
    assert observed["shape"] == OUTPUT_SHAPE, (
        f"expected Encoder()(x) for x of shape (2, 3, 64, 64) to have shape {tuple(OUTPUT_SHAPE)}; "
        f"observed {tuple(observed['shape'])}"
    )
    assert observed["min"] is not None and observed["min"] >= 0, (
        f"expected non-negative features (a ReLU after every convolution, the last one too); observed a "
        f"minimum of {observed['min']}"
    )


@pytest.mark.points(0.3)
@pytest.mark.number("7.1.1.3")
def test_encoder_parameter_count(observe):
    """7.1.1 Encoder: 42,156 parameters"""
    observed = observe("encoder_structure").data["parameters"]
    assert observed == PARAMETERS, f"expected {PARAMETERS:,} parameters in Encoder(); observed {observed:,}"
