"""7.1 probes: encoder and decoder structure and behaviour, `train_ae`, `train_classifier`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autograder.worker.probes.base import ProbeContext, ProbeError, instantiate, probe, random_tensor
from autograder.worker.standard import StandardAutoencoder


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
    ctx: ProbeContext, name: str, init_args: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Convolutions in registration order and parameter counts of `name(**init_args)`."""
    model = instantiate(ctx, name, init_args, seed)
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
def encoder_structure(ctx: ProbeContext) -> dict[str, Any]:
    """`module_structure` of `Encoder()`, the 7.1.1 component."""
    return module_structure(ctx, "Encoder")


@probe
def forward_shape(
    ctx: ProbeContext, name: str, input_shape: list[int], init_args: dict[str, Any] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Shape, dtype and value range of `name(**init_args)(x)` for a uniform random x of `input_shape`."""
    model = instantiate(ctx, name, init_args, seed)
    x = random_tensor(input_shape, seed)
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
def train_ae_one_epoch(ctx: ProbeContext, seed: int = 0, images: int = 64, batch_size: int = 16) -> dict[str, Any]:
    """Train the standard autoencoder from a fixed initialisation with this namespace's `train_ae` for one
    epoch on fixed random images; return the loss trajectory and the trained weights.

    The standard model isolates `train_ae`: a wrong Encoder costs points in 7.1.1 only.
    """
    train_ae = ctx.get("train_ae")
    torch.manual_seed(seed)
    model = StandardAutoencoder().to(ctx.get("DEVICE"))
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (images, 3, 64, 64), generator=generator, dtype=torch.uint8)
    loader = ctx.get("TensorBatches")(data, batch_size=batch_size, shuffle=False)
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
    weights = {f"weights.{key}": value.detach().cpu() for key, value in trained.state_dict().items()}
    return {"loss_traj": losses, **weights}
