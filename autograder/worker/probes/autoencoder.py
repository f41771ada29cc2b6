"""7.1 probes: encoder and decoder structure and behaviour, `train_ae`, `train_classifier`, and the training runs
of Methods I-III on the profile's budget.

Component isolation: every probe of a training function runs it on the standard models of
`autograder.worker.standard` (through `base.standard()`), never on the namespace's own Encoder/Decoder, so a
bug in one component cannot change what another component's tests observe. Training runs return the trained
weights of those standard models only (`autograder.grading.trained` evaluates them in the trusted process):
features of the test images and the labels that judge them are never computed or seen here (the training
labels a run needs arrive as an argument).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from autograder.profiles.profile import load_profile
from autograder.training import runs
from autograder.worker.probes.base import (
    ProbeContext,
    ProbeError,
    instantiate,
    probe,
    random_tensor,
    standard,
    tensors_argument,
)

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)
FEATURES = 24 * 4 * 4
CLASSES = 10


# ---------------------------------------------------------------------------------------------- helpers
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


def _convolutions(model: nn.Module, x: torch.Tensor | None) -> list[tuple[str, nn.Module]]:
    """The model's convolutions in the order its forward pass applies them to `x`, when it runs and applies
    each exactly once (attribute names and registration order are the student's business); otherwise in
    registration order."""
    registered = [(name, module) for name, module in model.named_modules() if isinstance(module, CONVOLUTIONS)]
    if x is None:
        return registered
    applied: list[nn.Module] = []
    handles = [module.register_forward_hook(lambda m, args, out: applied.append(m)) for _, module in registered]
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - a failing forward pass is observed by the shape tests; keep registration
        return registered
    finally:
        for handle in handles:
            handle.remove()
    by_id = {id(module): (name, module) for name, module in registered}
    if len(applied) != len(registered) or {id(module) for module in applied} != set(by_id):
        return registered
    return [by_id[id(module)] for module in applied]


def _cpu_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{key}": value.detach().cpu() for key, value in module.state_dict().items()}


def _unpack(returned: object, function: str, first: str) -> tuple[nn.Module, list[float]]:
    """(module, loss_traj) from what a training function returned, or a message saying what was wrong."""
    if not isinstance(returned, tuple | list) or len(returned) != 2:
        described = f"a {type(returned).__name__}"
        if isinstance(returned, tuple | list):
            described += f" of {len(returned)} values"
        raise ProbeError(f"`{function}` should return the pair ({first}, loss_traj); it returned {described}")
    module, loss_traj = returned
    if not isinstance(module, nn.Module):
        raise ProbeError(f"`{function}` should return {first} first; it returned a {type(module).__name__}")
    try:
        losses = [float(value) for value in loss_traj]
    except (TypeError, ValueError):
        raise ProbeError(
            f"`{function}`'s loss_traj should be a list of numbers (one mean loss per epoch); it is a "
            f"{type(loss_traj).__name__}"
        ) from None
    return module, losses


def _returned_module(value: object, function: str, first: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise ProbeError(f"`{function}` should return {first} first; it returned a {type(value).__name__}")
    return value


def _relative_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    numerator = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b, strict=True))
    denominator = sum(float(y.pow(2).sum()) for y in b)
    return (numerator / denominator) ** 0.5 if denominator > 0 else float(numerator > 0)


class _Watcher:
    """Watches `train_ae` from the outside: the minibatches it draws and the optimiser steps it takes.

    Before each minibatch is handed out, it computes at the current weights the reconstruction MSE a correct
    step minimises and its gradient (`torch.autograd.grad` leaves `.grad` alone). At every optimiser step (a
    global step pre-hook) it compares the gradient in `.grad` with that fresh gradient and with the fresh
    gradient plus the previous step's, which is what a missing `zero_grad` accumulates."""

    def __init__(self, loader: Any, model: nn.Module) -> None:
        self.loader, self.model = loader, model
        self.parameters = list(model.parameters())
        self.batches: list[dict[str, float]] = []
        self.steps: list[dict[str, float | bool]] = []
        self._fresh: list[torch.Tensor] | None = None
        self._previous: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for images, labels in self.loader:
            with torch.enable_grad():
                output = self.model(images)
                loss = F.mse_loss(output, images)
                self._fresh = list(torch.autograd.grad(loss, self.parameters))
            self.batches.append({"mse": loss.item(), "l1": F.l1_loss(output, images).item()})
            yield images, labels

    def before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        gradients = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
        fresh = self._fresh or [torch.zeros_like(p) for p in self.parameters]
        accumulated = fresh if self._previous is None else [a + b for a, b in zip(fresh, self._previous, strict=True)]
        self.steps.append(
            {
                "has_gradient": any(p.grad is not None for p in self.parameters),
                "fresh_error": _relative_distance(gradients, fresh),
                "accumulated_error": _relative_distance(gradients, accumulated),
                "scale": sum(float((g * f).sum()) for g, f in zip(gradients, fresh, strict=True))
                / max(sum(float(f.pow(2).sum()) for f in fresh), 1e-30),
            }
        )
        self._previous = gradients


def _run_data(ctx: ProbeContext) -> runs.RunData:
    """The prepared images (never labels) of the profile this namespace was set up from."""
    return runs.RunData.load(load_profile(ctx.get("SETUP").profile_path))


def _with_standard(ctx: ProbeContext, **standard: type[nn.Module]) -> SimpleNamespace:
    """The namespace with standard parts in place of the components not under test."""
    return SimpleNamespace(**{**ctx.namespace, **standard})


# ---------------------------------------------------------------------------------- 7.1.1 and 7.1.2
@probe
def module_structure(
    ctx: ProbeContext,
    name: str,
    init_args: dict[str, Any] | None = None,
    seed: int = 0,
    input_shape: list[int] | None = None,
) -> dict[str, Any]:
    """Convolutions of `name(**init_args)` with their hyperparameters, in the order the forward pass applies
    them to an input of `input_shape` (registration order when that fails), and parameter counts."""
    model = instantiate(ctx, name, init_args, seed)
    x = random_tensor(input_shape, seed) if input_shape is not None else None
    return {
        "class": type(model).__name__,
        "convolutions": [_layer(layer_name, module) for layer_name, module in _convolutions(model, x)],
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


@probe
def encoder_structure(ctx: ProbeContext) -> dict[str, Any]:
    """`module_structure` of `Encoder()`, the 7.1.1 component."""
    return module_structure(ctx, "Encoder", input_shape=[1, 3, 64, 64])


@probe
def decoder_structure(ctx: ProbeContext) -> dict[str, Any]:
    """`module_structure` of `Decoder()`, the 7.1.2 component."""
    return module_structure(ctx, "Decoder", input_shape=[1, 24, 4, 4])


@probe
def forward_shape(
    ctx: ProbeContext,
    name: str,
    input_shape: list[int],
    init_args: dict[str, Any] | None = None,
    seed: int = 0,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Shape, dtype and value range of `name(**init_args)(x)` for x uniform in [0, scale) of `input_shape`
    (a large scale drives the last layer far from zero, where a wrong final activation shows)."""
    _, y = _evaluate(instantiate(ctx, name, init_args, seed), name, input_shape, seed, scale)
    finite = bool(torch.isfinite(y).all()) if y.is_floating_point() else True
    return {
        "shape": list(y.shape),
        "dtype": str(y.dtype).removeprefix("torch."),
        "finite": finite,
        "min": float(y.min()) if y.numel() and finite else None,
        "max": float(y.max()) if y.numel() and finite else None,
    }


@probe
def forward_with_weights(
    ctx: ProbeContext,
    name: str,
    weights: str,
    input_shape: list[int],
    seed: int = 0,
    scale: float = 1.0,
    init_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`name(**init_args)(x)` after loading the given convolution weights ("0.weight", "0.bias", "1.weight",
    ...) into its convolutions in the order its forward pass applies them; x as in `forward_shape`.
    Under the same weights, a correct module computes exactly what the reference computes, so any
    difference is in the activations or in how the layers are wired."""
    model = instantiate(ctx, name, init_args, seed)
    given = tensors_argument(weights, "weights")
    count = len(given) // 2
    convolutions = _convolutions(model, random_tensor(input_shape, seed))
    if len(convolutions) != count:
        raise ProbeError(
            f"cannot load the reference weights: they are for {count} convolutions, and `{name}()` has "
            f"{len(convolutions)}"
        )
    with torch.no_grad():
        for index, (layer_name, module) in enumerate(convolutions):
            weight, bias = given[f"{index}.weight"], given[f"{index}.bias"]
            if module.weight.shape != weight.shape:
                raise ProbeError(
                    f"cannot load the reference weights: convolution `{layer_name}` has weights of shape "
                    f"{tuple(module.weight.shape)}, where the specification gives {tuple(weight.shape)}"
                )
            if module.bias is None:
                raise ProbeError(f"convolution `{layer_name}` has no bias (bias=False); the specified layers have one")
            module.weight.copy_(weight)
            module.bias.copy_(bias)
    x, y = _evaluate(model, name, input_shape, seed, scale)
    return {"input": x, "output": y.detach().cpu()}


def _evaluate(
    model: torch.nn.Module, name: str, input_shape: list[int], seed: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input, uniform in [0, scale) of `input_shape`, and what the model in eval mode returns for it."""
    x = random_tensor(input_shape, seed) * scale
    model.eval()
    with torch.no_grad():
        y = model(x)
    if not isinstance(y, torch.Tensor):
        raise ProbeError(f"`{name}.forward` should return a tensor, but it returned a {type(y).__name__}")
    return x, y


# ------------------------------------------------------------------------------------------ 7.1.3
@probe
def train_ae_contract(
    ctx: ProbeContext, seed: int = 0, images: int = 8, batch_size: int = 4, epochs: int = 2
) -> dict[str, Any]:
    """What `train_ae` returns after `epochs` epochs on a few random images, on the standard autoencoder
    initialised under `seed`: whether it returned the model it was given, its losses, and the weights of that
    model ("autoencoder.*"), from which the trusted side judges whether it was trained."""
    train_ae = ctx.get("train_ae")
    torch.manual_seed(seed)
    model = standard().StandardAutoencoder().to(ctx.get("DEVICE"))
    loader = ctx.get("TensorBatches")(runs.random_images(images, seed), batch_size=batch_size)
    trained, losses = _unpack(train_ae(model, loader, epochs=epochs), "train_ae", "model")
    return {"same_model": trained is model, "loss_traj": losses, **_cpu_tensors("autoencoder", model)}


@probe
def train_ae_one_epoch(ctx: ProbeContext, seed: int = 0, images: int = 32, batch_size: int = 8) -> dict[str, Any]:
    """Train the standard autoencoder from a fixed initialisation with this namespace's `train_ae` for one
    epoch on fixed random images: the loss trajectory, the trained weights, and what a `_Watcher` saw of
    each minibatch and optimiser step (to name the bug when the weights differ from the reference's)."""
    train_ae = ctx.get("train_ae")
    torch.manual_seed(seed)
    model = standard().StandardAutoencoder().to(ctx.get("DEVICE"))
    loader = ctx.get("TensorBatches")(runs.random_images(images, seed), batch_size=batch_size, shuffle=False)
    watcher = _Watcher(loader, model)
    handle = register_optimizer_step_pre_hook(watcher.before_step)
    try:
        torch.manual_seed(seed)
        trained, losses = _unpack(train_ae(model, watcher, epochs=1), "train_ae", "model")
    finally:
        handle.remove()
    return {
        "loss_traj": losses,
        "batches": watcher.batches,
        "steps": watcher.steps,
        **_cpu_tensors("weights", trained),
    }


@probe
def method1_weights(ctx: ProbeContext, epochs: int, seed: int, batch_size: int) -> dict[str, Any]:
    """Method I with this namespace's `train_ae` training the standard autoencoder on the profile's unlabeled
    images (the calibrated run of `runs.train_autoencoder`): the weights of the model it returned
    ("autoencoder.*") and the loss per epoch. The trusted side loads the weights into its own autoencoder and
    computes the features and reconstructions itself."""
    ctx.get("train_ae")
    ns = _with_standard(ctx, Autoencoder=standard().StandardAutoencoder)
    model, losses = runs.train_autoencoder(ns, _run_data(ctx), epochs, seed, batch_size)
    return {"losses": losses, **_cpu_tensors("autoencoder", _returned_module(model, "train_ae", "model"))}


# ------------------------------------------------------------------------------------------ 7.1.4
@probe
def train_classifier_one_epoch(
    ctx: ProbeContext, supervised: bool, seed: int = 0, images: int = 64, batch_size: int = 16, epochs: int = 1
) -> dict[str, Any]:
    """Train a linear classifier on the standard encoder initialised under `seed` with this namespace's
    `train_classifier` on random images and labels drawn from `seed`: the losses, whether it returned the
    classifier it was given, and the encoder's and that classifier's weights afterwards (from which the trusted
    side judges what was trained)."""
    train_classifier = ctx.get("train_classifier")
    device = ctx.get("DEVICE")
    torch.manual_seed(seed)
    encoder = standard().StandardEncoder().to(device)
    cls = nn.Linear(FEATURES, CLASSES).to(device)
    loader = ctx.get("TensorBatches")(
        runs.random_images(images, seed), runs.random_labels(images, seed), batch_size=batch_size, shuffle=False
    )
    torch.manual_seed(seed)
    returned = train_classifier(encoder, cls, loader, epochs=epochs, supervised=supervised)
    trained, losses = _unpack(returned, "train_classifier", "cls")
    return {
        "loss_traj": losses,
        "same_classifier": trained is cls,
        **_cpu_tensors("encoder", encoder),
        **_cpu_tensors("classifier", cls),
    }


@probe
def method2_weights(ctx: ProbeContext, labels: str, epochs: int, seed: int, batch_size: int) -> dict[str, Any]:
    """Method II with this namespace's `train_classifier(..., supervised=True)` on the standard encoder (the
    calibrated run of `runs.train_supervised`): the encoder's and the returned classifier's weights
    ("encoder.*", "classifier.*") and the loss per epoch; the trusted side computes the test logits."""
    ctx.get("train_classifier")
    train_labels = tensors_argument(labels, "labels")["labels"]
    ns = _with_standard(ctx, Encoder=standard().StandardEncoder)
    encoder, cls, losses = runs.train_supervised(ns, _run_data(ctx), train_labels, epochs, seed, batch_size)
    cls = _returned_module(cls, "train_classifier", "cls")
    return {"losses": losses, **_cpu_tensors("encoder", encoder), **_cpu_tensors("classifier", cls)}


@probe
def method3_weights(ctx: ProbeContext, labels: str, epochs: int, seed: int, batch_size: int) -> dict[str, Any]:
    """Method III with this namespace's `train_classifier(..., supervised=False)`: a classifier on a randomly
    initialised standard encoder (under `seed`), which must stay frozen. The encoder's and the returned
    classifier's weights and the loss per epoch; the trusted side compares the encoder with the
    initialisation it draws itself, and computes the test logits."""
    train_classifier = ctx.get("train_classifier")
    train_labels = tensors_argument(labels, "labels")["labels"]
    ns = _with_standard(ctx, Encoder=standard().StandardEncoder)
    data = _run_data(ctx)
    torch.manual_seed(seed)
    encoder = standard().StandardEncoder().to(ns.DEVICE)
    cls = nn.Linear(FEATURES, CLASSES).to(ns.DEVICE)
    loader = ns.TensorBatches(data.train, train_labels, batch_size=batch_size, shuffle=True, seed=seed)
    returned = train_classifier(encoder, cls, loader, epochs=epochs, supervised=False)
    cls, losses = _unpack(returned, "train_classifier", "cls")
    return {"losses": losses, **_cpu_tensors("encoder", encoder), **_cpu_tensors("classifier", cls)}
