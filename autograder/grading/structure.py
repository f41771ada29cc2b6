"""Structure reports confirmed by what the layers compute.

The structure, shape, range and gradient tests of 7.1.1, 7.1.2 and 7.2.1 read reports the student's interpreter
writes (layer lists, parameter counts, output shapes), which code running there can make up. Their points also need
a forward pass on weights and inputs this process draws afresh: loaded into the student's layers in the order they
are applied, the output must be what those layers compute, with any common activation after each (so that a wrong
activation, which other tests judge, costs nothing here). Only code that computes the layers' function gives it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autograder.worker.client import Worker
from autograder.worker.probes.base import random_tensor
from autograder.worker.protocol import Observation, encode_tensors

TOLERANCE = 1e-4
# The activations a layer may be followed by, for the confirmation only (the range tests judge which it should be):
# a LeakyReLU where a ReLU belongs costs 7.1.1.4, not the whole component. 5 ** 4 = 625 combinations for four
# convolutions: about half a second when no combination matches, once per grade.
ACTIVATIONS: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    F.relu,
    torch.sigmoid,
    torch.tanh,
    lambda x: x,
    F.leaky_relu,
)


def _stack(weights: dict[str, torch.Tensor], x: torch.Tensor, transposed: bool, activations: tuple) -> torch.Tensor:
    convolution = F.conv_transpose2d if transposed else F.conv2d
    for index, activation in enumerate(activations):
        x = activation(convolution(x, weights[f"{index}.weight"], weights[f"{index}.bias"], stride=2, padding=1))
    return x


def _matches(observed: torch.Tensor, expected: torch.Tensor) -> bool:
    if observed.numel() != expected.numel():
        return False
    return bool(torch.allclose(observed.reshape(expected.shape).double(), expected.double(), atol=TOLERANCE))


def convolutions_problem(
    observation: Observation, weights: dict[str, torch.Tensor], x: torch.Tensor, transposed: bool, name: str
) -> str | None:
    """None when `observation` (a `forward_with_weights` of `weights` on `x`) is what the convolutions compute
    with some activation after each; else what the student is told."""
    why = (
        f"the points of this test also need `{name}` to compute what its layers are: with weights and inputs drawn "
        "afresh by the grader loaded into its convolutions (in the order its forward pass applies them), "
    )
    if not observation.ok:
        return why + f"its forward pass could not be observed: {observation.message}"
    output = observation.tensors.get("output")
    count = len(weights) // 2
    if isinstance(output, torch.Tensor):
        for activations in itertools.product(ACTIVATIONS, repeat=count):
            if _matches(output, _stack(weights, x, transposed, activations)):
                return None
    return why + f"its output is not that of {count} such convolutions applied in order, with an activation after each"


def convolutions_check(
    worker: Worker, name: str, weights: dict[str, torch.Tensor], input_shape: list[int], seed: int, transposed: bool
) -> Callable[[], str | None]:
    """`convolutions_problem` of the student's `name` loaded with `weights` on inputs drawn from `seed`: observed
    once, when the first test whose own checks passed asks (so a test that fails anyway costs no extra call)."""

    @functools.cache
    def problem() -> str | None:
        args = {"name": name, "weights": encode_tensors(weights), "input_shape": input_shape, "seed": seed}
        observation = worker.call("forward_with_weights", **args)
        return convolutions_problem(observation, weights, random_tensor(input_shape, seed), transposed, name)

    return problem


def _same_directions(observed: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether each row of `observed` is a positive multiple of the same row of `expected`: a layer's output
    normalised per row, over the whole batch, or scaled, all point where the layer's rows point."""
    if observed.numel() != expected.numel() or expected.dim() != 2:
        return False
    rows = observed.reshape(expected.shape).double()
    return _matches(F.normalize(rows, dim=-1), F.normalize(expected.double(), dim=-1))


def linear_problem(observation: Observation, inputs: dict[str, torch.Tensor], name: str) -> str | None:
    """None when `observation` (a `projection_head_output`) is the given Linear layer's output, with or without
    an activation, normalised in any way (per row, over the whole batch, over the batch per feature) or
    scaled; else what the student is told. How it should be normalised is the other tests' to judge."""
    why = (
        f"the points of this test also need `{name}` to compute what its layer is: with a weight, bias and inputs "
        "drawn afresh by the grader loaded into its Linear layer, "
    )
    if not observation.ok:
        return why + f"its forward pass could not be observed: {observation.message}"
    output = observation.tensors.get("output")
    linear = inputs["x"] @ inputs["weight"].T + inputs["bias"]
    candidates = [F.normalize(linear, dim=0)]
    for activation in ACTIVATIONS:
        normalised = F.normalize(activation(linear), dim=-1)
        candidates += [activation(linear), normalised, activation(F.normalize(linear, dim=-1))]
    if isinstance(output, torch.Tensor) and (
        any(_matches(output, y) for y in candidates)
        or any(_same_directions(output, activation(linear)) for activation in ACTIVATIONS)
    ):
        return None
    return why + "its output is not that layer's output (normalised or not, with or without an activation)"


def confirm(problem: str | None) -> None:
    """Fail the test when its structure report is not confirmed by what the layers compute."""
    if problem is not None:
        pytest.fail(problem, pytrace=False)
