"""7.2.1 ProjectionHead (1 point): one Linear layer, L2-normalised rows, the reference's outputs, gradients."""

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autograder.grading.structure import confirm, linear_problem
from autograder.worker.protocol import encode_tensors

EMBEDDING_DIM = 48
DEFAULT_PROJECTION = 256
NORM_TOLERANCE = 1e-4
OUTPUT_TOLERANCE = 1e-5

pytestmark = pytest.mark.tags("7.2", "clip")


def _head_inputs(seed: int, batch: int, embedding_dim: int, projection_dim: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "weight": torch.randn(projection_dim, embedding_dim, generator=generator) * 0.2,
        "bias": torch.randn(projection_dim, generator=generator) * 0.2,
        "x": torch.randn(batch, embedding_dim, generator=generator),
        "upstream": torch.randn(batch, projection_dim, generator=generator),
    }


def _observe_output(observe, inputs: dict[str, torch.Tensor]):
    projection_dim, embedding_dim = inputs["weight"].shape
    return observe(
        "projection_head_output",
        embedding_dim=embedding_dim,
        projection_dim=projection_dim,
        tensors=encode_tensors(inputs),
    )


@pytest.fixture(scope="module")
def computes_its_layer(worker, run_seed) -> Callable[[], str | None]:
    """Why the ProjectionHead's reports are not confirmed by what it computes on a weight, bias and inputs drawn
    afresh here (`autograder.grading.structure`), or None.
    Evaluated once, when the first test whose own checks passed asks."""

    @functools.cache
    def problem() -> str | None:
        inputs = _head_inputs(seed=run_seed + 1, batch=3, embedding_dim=EMBEDDING_DIM, projection_dim=16)
        observation = worker.call(
            "projection_head_output", embedding_dim=EMBEDDING_DIM, projection_dim=16, tensors=encode_tensors(inputs)
        )
        return linear_problem(observation, inputs, "ProjectionHead")

    return problem


def _layers(linears: list[dict]) -> str:
    return ", ".join(f"`{layer['name']}` {layer['in_features']} → {layer['out_features']}" for layer in linears)


@pytest.mark.points(0.3)
@pytest.mark.number("7.2.1.1")
def test_projection_head_is_one_linear_layer(observe, computes_its_layer):
    """7.2.1 ProjectionHead: one Linear layer from embedding_dim to projection_dim (256 by default)"""
    for projection_dim in (None, 16):
        observed = observe("projection_head_structure", embedding_dim=EMBEDDING_DIM, projection_dim=projection_dim)
        expected_out = projection_dim or DEFAULT_PROJECTION
        call = f"ProjectionHead({EMBEDDING_DIM}" + (f", projection_dim={projection_dim})" if projection_dim else ")")
        linears = observed.data["linears"]
        extra = f": {_layers(linears)} (extra layers: the head is a single linear projection)" if linears else ""
        assert len(linears) == 1, f"expected {call} to hold exactly one nn.Linear layer; observed {len(linears)}{extra}"
        layer = linears[0]
        assert (layer["in_features"], layer["out_features"]) == (EMBEDDING_DIM, expected_out), (
            f"expected the Linear layer of {call} to map {EMBEDDING_DIM} → {expected_out} features; observed "
            f"{layer['in_features']} → {layer['out_features']}"
            + (" (is projection_dim passed on to the layer?)" if projection_dim else "")
        )
        assert layer["bias"], f"expected the Linear layer of {call} to have a bias (nn.Linear's default); it has none"
        others = observed.data["other_parameterised"]
        assert not others, (
            f"expected no layer with parameters besides the Linear layer in {call}; observed "
            + ", ".join(f"`{other['name']}` ({other['type']})" for other in others)
        )
    confirm(computes_its_layer())


@pytest.mark.points(0.3)
@pytest.mark.number("7.2.1.2")
def test_projection_head_rows_have_unit_norm(observe, computes_its_layer):
    """7.2.1 ProjectionHead: outputs of shape (N, projection_dim) whose rows have norm 1"""
    for batch in (5, 1):
        inputs = _head_inputs(seed=batch, batch=batch, embedding_dim=EMBEDDING_DIM, projection_dim=DEFAULT_PROJECTION)
        output = _observe_output(observe, inputs).tensors["output"]
        assert list(output.shape) == [batch, DEFAULT_PROJECTION], (
            f"expected ProjectionHead({EMBEDDING_DIM})(x) for x of shape ({batch}, {EMBEDDING_DIM}) to have shape "
            f"({batch}, {DEFAULT_PROJECTION}); observed {tuple(output.shape)}"
        )
        rows = output.double().norm(dim=1)
        if bool(((rows - 1).abs() <= NORM_TOLERANCE).all()):
            continue
        columns = output.double().norm(dim=0)
        if bool(((columns - 1).abs() <= NORM_TOLERANCE).all()):
            likely = "the output is normalised over dim 0 (across the batch): normalise each row, with dim=-1"
        elif batch > 1 and abs(float(output.double().norm()) - 1) <= NORM_TOLERANCE:
            likely = (
                "the whole output matrix has norm 1: it is divided by one norm for the whole batch (`x.norm()` or "
                "F.normalize without dim on a flattened tensor); normalise each row, with dim=-1"
            )
        else:
            likely = "the output is not L2-normalised: return F.normalize(..., dim=-1) of the linear layer's output"
        pytest.fail(
            f"expected every row of the output to have L2 norm 1 (batch of {batch}); observed norms from "
            f"{float(rows.min()):.4g} to {float(rows.max()):.4g}: {likely}",
            pytrace=False,
        )
    confirm(computes_its_layer())


@pytest.mark.points(0.3)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.2.1.3")
def test_projection_head_matches_the_reference(observe, reference, run_seed):
    """7.2.1 ProjectionHead: outputs equal the reference's under the same weights"""
    inputs = _head_inputs(seed=run_seed, batch=6, embedding_dim=40, projection_dim=32)
    student = _observe_output(observe, inputs)
    expected = _observe_output(reference, inputs).tensors["output"]
    assert student.data["loaded_weights"], (
        "expected ProjectionHead(40, projection_dim=32) to consist of one nn.Linear(40, 32) (with bias), so that "
        "the reference's weights can be loaded into it; they could not be (extra or missing layers?)"
    )
    observed = student.tensors["output"]
    assert observed.shape == expected.shape, (
        f"expected an output of shape {tuple(expected.shape)}; observed {tuple(observed.shape)}"
    )
    difference = float((observed - expected).abs().max())
    if difference <= OUTPUT_TOLERANCE:
        return
    linear = inputs["x"] @ inputs["weight"].T + inputs["bias"]
    known = {
        "the output is not normalised (F.normalize(..., dim=-1) is missing)": linear,
        "the output is normalised over dim 0 (the batch) instead of each row (dim=-1)": F.normalize(linear, dim=0),
        "a ReLU is applied before the normalisation (the head has no activation)": F.normalize(F.relu(linear), dim=-1),
        "a ReLU is applied after the normalisation (the head has no activation)": F.relu(F.normalize(linear, dim=-1)),
    }
    likely = next(
        (why for why, value in known.items() if float((observed - value).abs().max()) <= OUTPUT_TOLERANCE),
        "the output is not the L2-normalised output of the single linear layer",
    )
    pytest.fail(
        f"expected the outputs of the reference head under the same weights; yours differ by up to "
        f"{difference:.3g}: {likely}",
        pytrace=False,
    )


@pytest.mark.points(0.1)
@pytest.mark.number("7.2.1.4")
def test_projection_head_passes_gradients(observe, computes_its_layer):
    """7.2.1 ProjectionHead: gradients reach the linear layer"""
    inputs = _head_inputs(seed=7, batch=4, embedding_dim=EMBEDDING_DIM, projection_dim=DEFAULT_PROJECTION)
    observed = _observe_output(observe, inputs).data
    assert observed["output_requires_grad"], (
        "expected the output of ProjectionHead to require grad so that the head can be trained; it does not "
        "(is it computed under torch.no_grad() or detached?)"
    )
    missing = [name for name, norm in observed["grads"].items() if not norm]
    assert observed["grads"] and not missing, (
        "expected a non-zero gradient on every parameter of the head after a backward pass through its output; "
        f"observed none on {', '.join(f'`{name}`' for name in missing) or 'any (the head has no parameters)'}"
    )
    confirm(computes_its_layer())
