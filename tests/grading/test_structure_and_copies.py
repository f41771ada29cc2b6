"""Structure reports confirmed by computation (`grading.structure`) and copies of the standard parts
(`grading.copies`), on real modules and real ingested notebooks."""

from __future__ import annotations

import inspect
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.grading.copies import copies_grader_class
from autograder.grading.structure import convolutions_problem, linear_problem
from autograder.ingest import ingest
from autograder.worker.protocol import Observation
from autograder.worker.standard import StandardDecoder, StandardEncoder


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    weights = {}
    for index, convolution in enumerate(module.convolutions):
        weights[f"{index}.weight"], weights[f"{index}.bias"] = convolution.weight.detach(), convolution.bias.detach()
    return weights


def test_the_layers_own_function_is_confirmed_and_anything_else_is_not():
    torch.manual_seed(0)
    decoder = StandardDecoder()
    z = torch.rand(2, 24, 4, 4)
    with torch.no_grad():
        output = decoder(z)
    weights = _weights(decoder)
    assert convolutions_problem(Observation(ok=True, tensors={"output": output}), weights, z, True, "Decoder") is None
    leaky = z
    for index in range(4):
        leaky = torch.nn.functional.leaky_relu(
            torch.nn.functional.conv_transpose2d(leaky, weights[f"{index}.weight"], weights[f"{index}.bias"], 2, 1)
        )
    assert convolutions_problem(Observation(ok=True, tensors={"output": leaky}), weights, z, True, "Decoder") is None
    flattened = Observation(ok=True, tensors={"output": output.flatten(start_dim=1)})
    assert convolutions_problem(flattened, weights, z, True, "Decoder") is None
    made_up = Observation(ok=True, tensors={"output": torch.rand_like(output)})
    assert "is not that of 4 such convolutions" in convolutions_problem(made_up, weights, z, True, "Decoder")
    failed = Observation.failure("NotImplementedError")
    assert "could not be observed: NotImplementedError" in convolutions_problem(failed, weights, z, True, "Decoder")


def test_a_linear_layer_is_confirmed_however_it_is_normalised_and_a_made_up_output_is_not():
    generator = torch.Generator().manual_seed(1)
    inputs = {"x": torch.randn(3, 8, generator=generator), "weight": torch.randn(4, 8, generator=generator)}
    inputs["bias"] = torch.randn(4, generator=generator)
    linear = inputs["x"] @ inputs["weight"].T + inputs["bias"]
    normalised_wrongly = (linear / linear.norm(), 0.07 * linear, torch.nn.functional.normalize(linear, dim=0))
    for output in (linear, torch.nn.functional.normalize(linear, dim=-1), *normalised_wrongly):
        assert linear_problem(Observation(ok=True, tensors={"output": output}), inputs, "ProjectionHead") is None
    forged = Observation(ok=True, tensors={"output": torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)})
    assert "is not that layer's output" in linear_problem(forged, inputs, "ProjectionHead")
    negated = Observation(ok=True, tensors={"output": -linear})
    assert "is not that layer's output" in linear_problem(negated, inputs, "ProjectionHead")


def _notebook_with(tmp_path: Path, source: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import torch\nfrom torch import nn\nimport torch.nn.functional as F")]
    notebook.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / "ps7.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("original", [StandardEncoder, StandardDecoder])
def test_a_renamed_copy_of_a_standard_part_is_recognised(tmp_path, original):
    name = original.__name__.removeprefix("Standard")
    source = inspect.getsource(original).replace(f"class {original.__name__}(", f"class {name}(")
    source = source.replace('"""', '"""Mine. ', 1)
    submission = ingest(_notebook_with(tmp_path, source))
    assert copies_grader_class(submission, name, original)


def test_the_reference_solution_is_not_a_copy():
    submission = ingest(REFERENCE_NOTEBOOK)
    assert not copies_grader_class(submission, "Encoder", StandardEncoder)
    assert not copies_grader_class(submission, "Decoder", StandardDecoder)
