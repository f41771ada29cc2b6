"""Probes: small functions that run inside the sandboxed worker, next to student code.

A probe observes (shapes, layer lists, trained weights) and never judges: expected values and
verdicts live in the trusted grading suites. Each probe takes a `ProbeContext` and JSON arguments,
and returns a dict whose values are JSON data, except top-level `torch.Tensor` values, which travel
as safetensors. `impl` is "student" or "reference": the same probe observes either implementation,
so a suite can compare them. Register a probe with `@probe`; the suites call it by its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

IMPLS = ("student", "reference")
MAX_INPUT_ELEMENTS = 10_000_000

PROBES: dict[str, Callable[..., dict[str, Any]]] = {}


class ProbeError(Exception):
    """The probe could not observe what it was asked to; the message is shown to the student as is."""


class ProbeContext:
    """What a probe may use: the two namespaces, and why a student name is missing when it is."""

    def __init__(self, namespaces: dict[str, dict[str, Any]], load_errors: dict[str, str]) -> None:
        self._namespaces = namespaces
        self._load_errors = load_errors

    def namespace(self, impl: str) -> dict[str, Any]:
        if impl not in IMPLS:
            raise ProbeError(f"internal grader error: impl must be one of {IMPLS}, got {impl!r}")
        return self._namespaces[impl]

    def get(self, impl: str, name: str) -> Any:
        """`name` from the chosen implementation, with a message a student can act on when it is missing."""
        namespace = self.namespace(impl)
        if name in namespace:
            return namespace[name]
        if impl == "student" and name in self._load_errors:
            raise ProbeError(f"`{name}` could not be loaded from your notebook: {self._load_errors[name]}")
        if impl == "student":
            raise ProbeError(f"`{name}` is not defined in your notebook")
        raise ProbeError(f"internal grader error: the reference does not define `{name}`")


def probe(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Register a probe under its function name."""
    PROBES[function.__name__] = function
    return function


def _shape(value: object, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(n, int) and 0 < n for n in value):
        raise ProbeError(f"internal grader error: {what} must be a list of positive integers, got {value!r}")
    if math.prod(value) > MAX_INPUT_ELEMENTS:
        raise ProbeError(f"internal grader error: {what} {value} is too large")
    return value


def _instantiate(ctx: ProbeContext, impl: str, name: str, init_args: dict[str, Any] | None, seed: int) -> nn.Module:
    cls = ctx.get(impl, name)
    torch.manual_seed(seed)
    model = cls(**(init_args or {}))
    if not isinstance(model, nn.Module):
        raise ProbeError(f"`{name}(...)` should create a torch.nn.Module, but it created a {type(model).__name__}")
    return model


def _layer(name: str, module: nn.Module) -> dict[str, Any]:
    return {
        "name": name,
        "type": type(module).__name__,
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
        "kernel_size": list(module.kernel_size),
        "stride": list(module.stride),
        "padding": list(module.padding) if isinstance(module.padding, tuple) else module.padding,
    }


@probe
def module_structure(
    ctx: ProbeContext, name: str, impl: str = "student", init_args: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Convolutions in registration order, activation modules, and parameter counts of `name(**init_args)`."""
    model = _instantiate(ctx, impl, name, init_args, seed)
    convolutions = [
        _layer(layer_name, module)
        for layer_name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
    ]
    return {
        "class": type(model).__name__,
        "convolutions": convolutions,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


@probe
def encoder_structure(ctx: ProbeContext, impl: str = "student") -> dict[str, Any]:
    """`module_structure` of `Encoder()`, the 7.1.1 component."""
    return module_structure(ctx, "Encoder", impl)


@probe
def forward_shape(
    ctx: ProbeContext,
    name: str,
    input_shape: list[int],
    impl: str = "student",
    init_args: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Shape, dtype and value range of `name(**init_args)(x)` for a uniform random x of `input_shape`."""
    model = _instantiate(ctx, impl, name, init_args, seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(_shape(input_shape, "input_shape"), generator=generator)
    model.eval()
    with torch.no_grad():
        y = model(x)
    if not isinstance(y, torch.Tensor):
        raise ProbeError(f"`{name}.forward` should return a tensor, but it returned a {type(y).__name__}")
    finite = bool(torch.isfinite(y).all()) if y.is_floating_point() else True
    return {
        "shape": list(y.shape),
        "dtype": str(y.dtype).removeprefix("torch."),
        "finite": finite,
        "min": float(y.min()) if y.numel() and finite else None,
        "max": float(y.max()) if y.numel() and finite else None,
    }


@probe
def train_ae_one_epoch(
    ctx: ProbeContext, impl: str = "student", seed: int = 0, images: int = 64, batch_size: int = 16
) -> dict[str, Any]:
    """Train the reference Autoencoder from a fixed initialisation with impl's `train_ae` for one epoch
    on fixed random images; return the loss trajectory and the trained weights.

    Using the reference model isolates `train_ae`: a wrong Encoder costs points in 7.1.1 only.
    """
    reference = ctx.namespace("reference")
    train_ae = ctx.get(impl, "train_ae")
    torch.manual_seed(seed)
    model = reference["Autoencoder"]().to(reference["DEVICE"])
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (images, 3, 64, 64), generator=generator, dtype=torch.uint8)
    loader = reference["TensorBatches"](data, batch_size=batch_size, shuffle=False)
    torch.manual_seed(seed)
    returned = train_ae(model, loader, epochs=1)
    if not isinstance(returned, tuple) or len(returned) != 2:
        raise ProbeError(f"`train_ae` should return (model, loss_traj), but it returned {type(returned).__name__}")
    trained, loss_traj = returned
    if not isinstance(trained, nn.Module):
        raise ProbeError(f"`train_ae` should return the model first, but returned a {type(trained).__name__}")
    try:
        losses = [float(value) for value in loss_traj]
    except (TypeError, ValueError):
        raise ProbeError("`train_ae`'s loss_traj should be a list of numbers (one mean loss per epoch)") from None
    weights = {f"weights.{key}": value for key, value in trained.state_dict().items()}
    return {"loss_traj": losses, **weights}
