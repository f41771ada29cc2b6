"""7.2 probes: the projection head, the CLIP model and its loss, retrieval, and the CLIP training run.

Component isolation: every probe that builds the student's `CLIPModel` does so with the standard projection
head (`_standard_heads`), so a wrong `ProjectionHead` costs points in 7.2.1 only. The loss is observed on
fixed features fed through stub encoders, so the trusted suite can recompute the symmetric InfoNCE from
the same numbers; `retrieve_images` gets a stub model whose query embedding the suite knows. The training
run returns weights only, which the trusted side evaluates (`autograder.grading.trained`).

Over 400 lines on purpose: the probes of part 7.2 (projection head, CLIP model and loss, retrieval) and its
training run share the stub encoders and the standard heads defined here.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from unittest.mock import patch

import numpy as np
import torch
from torch import nn

from autograder.profiles.profile import load_profile
from autograder.training import runs
from autograder.worker.errors import describe_error, student_traceback
from autograder.worker.probes.base import (
    ProbeContext,
    ProbeError,
    grader_class,
    instantiate,
    probe,
    standard,
    tensors_argument,
)
from autograder.worker.probes.loops import count_student_lines

HEADS = ("image_projection", "text_projection")
MAX_RETRIEVAL_IMAGES = 4096
ENCODER_SIZES = {"image_projection": "image_embedding", "text_projection": "text_embedding"}
ENCODERS = {"image_encoder": "ImageEncoder", "text_encoder": "TextEncoder"}
_DEVICE_WORDS = ("cuda", "nvidia", "device", "gpu")
_GPU_HINT = (
    "The grader runs your code on the CPU. This error usually means the code assumes a GPU (a hard-coded "
    "`.cuda()`, `device='cuda'` or `get_device()`): create tensors on the device of the data instead, e.g. "
    "`torch.arange(n, device=logits.device)`."
)


def _standard_heads(ctx: ProbeContext) -> AbstractContextManager:
    """`ProjectionHead` is the standard one while the student's CLIPModel is built: the class looks the name
    up in the namespace it was defined in, which is `ctx.namespace` (restored as it was afterwards)."""
    return patch.dict(ctx.namespace, {"ProjectionHead": standard().StandardProjectionHead})


@contextmanager
def _gpu_hint() -> Iterator[None]:
    """Re-raise errors that mention a device with the hint that the code must run on the CPU."""
    try:
        yield
    except (RuntimeError, AssertionError, TypeError, ValueError) as error:
        if not any(word in str(error).lower() for word in _DEVICE_WORDS):
            raise
        raise ProbeError(f"{describe_error(error)}\n{_GPU_HINT}\n{student_traceback(error)}") from None


@contextmanager
def _on_cpu(ctx: ProbeContext) -> Iterator[None]:
    """Run student code on the CPU whatever the machine: `DEVICE` (which a student may use) is the CPU, and
    an error that comes from assuming a GPU says so. The verdict is then the same with or without a GPU."""
    previous = ctx.namespace.get("DEVICE")
    ctx.namespace["DEVICE"] = torch.device("cpu")
    try:
        with _gpu_hint():
            yield
    finally:
        ctx.namespace["DEVICE"] = previous


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _grad_norm(parameter: torch.Tensor) -> float | None:
    """None when no gradient reached the parameter at all."""
    return None if parameter.grad is None else float(parameter.grad.norm())


def _as_float(value: object) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


# ---------------------------------------------------------------------------------------------- 7.2.1


@probe
def projection_head_structure(
    ctx: ProbeContext, embedding_dim: int, projection_dim: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """The linear layers and the other parameterised modules of `ProjectionHead(embedding_dim[, projection_dim])`."""
    init_args: dict[str, Any] = {"embedding_dim": embedding_dim}
    if projection_dim is not None:
        init_args["projection_dim"] = projection_dim
    head = instantiate(ctx, "ProjectionHead", init_args, seed)
    others = [
        {"name": name, "type": type(module).__name__}
        for name, module in head.named_modules()
        if not isinstance(module, nn.Linear) and any(True for _ in module.parameters(recurse=False))
    ]
    return {
        "linears": [
            {"name": name, "in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}
            for name, m in _linears(head)
        ],
        "other_parameterised": others,
    }


@probe
def projection_head_output(
    ctx: ProbeContext, embedding_dim: int, tensors: str, projection_dim: int = 256, seed: int = 0
) -> dict[str, Any]:
    """`ProjectionHead(embedding_dim, projection_dim)(x)` with the given weight and bias loaded into its one
    Linear layer (when it has exactly one of that shape), and the gradient norm of every parameter after a
    backward pass of `(output * upstream).sum()`.

    Loading the weights, rather than relying on the seed, makes "same weights" hold whatever the order in
    which a student's head creates things."""
    given = tensors_argument(tensors)
    head = instantiate(ctx, "ProjectionHead", {"embedding_dim": embedding_dim, "projection_dim": projection_dim}, seed)
    linears = [module for _, module in _linears(head)]
    shape = tuple(given["weight"].shape)
    loaded = len(linears) == 1 and tuple(linears[0].weight.shape) == shape and linears[0].bias is not None
    if loaded:
        with torch.no_grad():
            linears[0].weight.copy_(given["weight"])
            linears[0].bias.copy_(given["bias"])
    output = head(given["x"])
    if not isinstance(output, torch.Tensor):
        raise ProbeError(f"`ProjectionHead.forward` should return a tensor, but it returned a {type(output).__name__}")
    if output.requires_grad and output.shape == given["upstream"].shape:
        (output * given["upstream"]).sum().backward()
    return {
        "output": output.detach(),
        "loaded_weights": loaded,
        "grads": {name: _grad_norm(parameter) for name, parameter in head.named_parameters()},
        "output_requires_grad": output.requires_grad,
    }


# ---------------------------------------------------------------------------------------------- 7.2.2


def _clip_model(ctx: ProbeContext, temperature: float, seed: int) -> nn.Module:
    """The student's CLIPModel with standard heads, for the profile's encoder sizes, on the CPU."""
    setup = ctx.get("SETUP")
    init_args = {
        "temperature": temperature,
        "image_embedding": setup.image_embedding,
        "text_embedding": setup.text_embedding,
    }
    with _standard_heads(ctx), _on_cpu(ctx):
        return instantiate(ctx, "CLIPModel", init_args, seed, allowed=(standard().StandardProjectionHead,))


def _parameter_counts(module: object) -> dict[str, int] | None:
    if not isinstance(module, nn.Module):
        return None
    return {
        "total": sum(p.numel() for p in module.parameters()),
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


@probe
def clip_structure(ctx: ProbeContext, temperature: float, seed: int = 0) -> dict[str, Any]:
    """What `CLIPModel.__init__` built: the encoders (their class and trainable parameters), the heads (their
    input and output sizes) and the temperature it kept, for the profile's encoder sizes."""
    model = _clip_model(ctx, temperature, seed)
    encoders = {}
    for attribute, class_name in ENCODERS.items():
        module = getattr(model, attribute, None)
        encoders[attribute] = {
            "present": module is not None,
            "type": type(module).__name__,
            "expected_type": isinstance(module, ctx.get(class_name)),
            "parameters": _parameter_counts(module),
        }
    heads = {}
    for attribute in HEADS:
        module = getattr(model, attribute, None)
        is_standard = isinstance(module, standard().StandardProjectionHead)
        heads[attribute] = {
            "present": module is not None,
            "type": type(module).__name__,
            "projection_head": is_standard,
            "in_features": module.projection.in_features if is_standard else None,
            "out_features": module.projection.out_features if is_standard else None,
        }
    setup = ctx.get("SETUP")
    return {
        "encoders": encoders,
        "heads": heads,
        "has_temperature": hasattr(model, "temperature"),
        "temperature": _as_float(getattr(model, "temperature", None)),
        "image_embedding": setup.image_embedding,
        "text_embedding": setup.text_embedding,
    }


@grader_class
class _StubImageEncoder(nn.Module):
    """Fixed image features, known to the suite, whatever the pixels."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(images) != len(self.features):
            raise ProbeError(
                f"`CLIPModel.forward` passed {len(images)} images to `self.image_encoder`; the batch holds "
                f"{len(self.features)} (pass batch['image'] as it is)"
            )
        return self.features


@grader_class
class _StubTextEncoder(nn.Module):
    """Fixed caption features, taking the provided TextEncoder's arguments; it counts its calls."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)
        self.calls = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if len(input_ids) != len(self.features):
            raise ProbeError(
                f"`CLIPModel.forward` passed {len(input_ids)} captions to `self.text_encoder`; the batch holds "
                f"{len(self.features)} (pass batch['input_ids'] and batch['attention_mask'])"
            )
        self.calls += 1
        return self.features


def _stub_batch(size: int) -> dict[str, torch.Tensor]:
    return {
        "image": torch.zeros(size, 3, 8, 8),
        "input_ids": torch.ones(size, 6, dtype=torch.long),
        "attention_mask": torch.ones(size, 6, dtype=torch.long),
    }


@probe
def clip_loss(ctx: ProbeContext, temperature: float, tensors: str, seed: int = 0) -> dict[str, Any]:
    """The student's `CLIPModel.forward` on fixed features through stub encoders, on the CPU.

    `tensors` holds the heads' weights ("image_head.weight", "image_head.bias", "text_head.*") and, for each
    batch i, "image_features.i" and "text_features.i". For each batch: what forward returned (type, shape,
    value), after a `loss.backward()` that must not fail."""
    given = tensors_argument(tensors)
    model = _model_with_heads(ctx, temperature, seed, given)
    batches = []
    count = sum(1 for name in given if name.startswith("image_features."))
    for index in range(count):
        image_stub = _StubImageEncoder(given[f"image_features.{index}"])
        text_stub = _StubTextEncoder(given[f"text_features.{index}"])
        model.image_encoder, model.text_encoder = image_stub, text_stub
        with _on_cpu(ctx):
            loss = model(_stub_batch(len(image_stub.features)))
            tensor = isinstance(loss, torch.Tensor)
            if tensor and loss.requires_grad and loss.numel() == 1:
                loss.backward()
        batches.append(
            {
                "size": len(image_stub.features),
                "type": type(loss).__name__,
                "shape": list(loss.shape) if tensor else None,
                "loss": float(loss.detach().flatten()[0]) if tensor and loss.numel() else None,
                "requires_grad": bool(tensor and loss.requires_grad),
            }
        )
    return {"batches": batches}


def _model_with_heads(ctx: ProbeContext, temperature: float, seed: int, given: dict[str, torch.Tensor]) -> nn.Module:
    """The student's CLIPModel with the given weights loaded into its standard heads."""
    model = _clip_model(ctx, temperature, seed)
    for attribute, prefix in zip(HEADS, ("image_head", "text_head"), strict=True):
        head = getattr(model, attribute, None)
        if not isinstance(head, standard().StandardProjectionHead):
            raise ProbeError(
                f"`CLIPModel` should create `self.{attribute}` with `ProjectionHead(...)`; it is "
                f"{'missing' if head is None else f'a {type(head).__name__}'}"
            )
        weight = given[f"{prefix}.weight"]
        if head.projection.in_features != weight.shape[1]:
            raise ProbeError(
                f"`self.{attribute}` takes {head.projection.in_features} features, but its encoder gives "
                f"{weight.shape[1]}: build it from the `{ENCODER_SIZES[attribute]}` argument of CLIPModel"
            )
        head.projection.load_state_dict({"weight": weight, "bias": given[f"{prefix}.bias"]})
    return model


@probe
def clip_forward_line_counts(ctx: ProbeContext, temperature: float, tensors: str, seed: int = 0) -> dict[str, Any]:
    """How often each line of the student's code ran in `CLIPModel.forward` (and the helpers it calls), for
    each batch of `tensors` (laid out as for `clip_loss`), through the stub encoders."""
    given = tensors_argument(tensors)
    model = _model_with_heads(ctx, temperature, seed, given)
    forward = type(model).forward
    batches = []
    count = sum(1 for name in given if name.startswith("image_features."))
    for index in range(count):
        image_stub = _StubImageEncoder(given[f"image_features.{index}"])
        model.image_encoder, model.text_encoder = image_stub, _StubTextEncoder(given[f"text_features.{index}"])
        batch = _stub_batch(len(image_stub.features))
        with _on_cpu(ctx):
            _, counts = count_student_lines(functools.partial(model, batch), forward)
        batches.append({"size": len(image_stub.features), **counts.as_json()})
    return {"batches": batches}


@probe
def clip_gradients(
    ctx: ProbeContext, temperature: float, seed: int = 0, batch_size: int = 4, image_size: int = 32
) -> dict[str, Any]:
    """One backward pass of the student's CLIPModel with the real encoders, on the CPU: which parameters of
    each part received a non-zero gradient. The token ids are random, so no caption is in the text
    feature cache and the real (frozen) text encoder runs."""
    model = _clip_model(ctx, temperature, seed)
    generator = torch.Generator().manual_seed(seed)
    tokenizer = ctx.get("TOKENIZER")
    # the upper half of a vocabulary holds ordinary word pieces (special tokens come first in DistilBERT's)
    input_ids = torch.randint(tokenizer.vocab_size // 2, tokenizer.vocab_size, (batch_size, 12), generator=generator)
    input_ids[:, 0] = tokenizer.cls_token_id
    input_ids[:, -1] = tokenizer.sep_token_id
    batch = {
        "image": torch.randn(batch_size, 3, image_size, image_size, generator=generator),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
    }
    model.zero_grad(set_to_none=True)
    with _on_cpu(ctx):
        loss = model(batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ProbeError(f"`CLIPModel.forward` should return the loss as a one-element tensor; got {loss!r:.80}")
        if not loss.requires_grad:
            raise ProbeError("the loss `CLIPModel.forward` returned does not require grad: nothing can be trained")
        loss.backward()
    parts = {}
    for attribute in (*ENCODERS, *HEADS):
        module = getattr(model, attribute, None)
        if not isinstance(module, nn.Module):
            raise ProbeError(f"`CLIPModel` has no module `self.{attribute}`")
        parameters = list(module.parameters())
        parts[attribute] = {
            "tensors": len(parameters),
            "with_gradient": sum(1 for p in parameters if p.grad is not None and bool(p.grad.abs().sum() > 0)),
        }
    return {"parts": parts}


TRAINED_PARTS = ("image_encoder", "image_projection", "text_projection")


@probe
def clip_training_weights(ctx: ProbeContext, epochs: int, seed: int) -> dict[str, Any]:
    """CLIP trained with the student's CLIPModel (standard heads; provided encoders, batches and `train_clip`)
    on the profile's captioned split (the calibrated run of `runs.train_clip_model`): the weights of its image
    encoder and of both heads ("image_encoder.*", "image_projection.*", "text_projection.*") and the loss per
    epoch. The trusted side loads them into its own encoder and heads, and computes the features it probes
    (with labels this process never sees) and the report's retrievals itself."""
    setup = ctx.get("SETUP")
    data = runs.RunData.load(load_profile(setup.profile_path))
    with _standard_heads(ctx), _gpu_hint():
        ns = types.SimpleNamespace(**ctx.namespace)
        model, losses = runs.train_clip_model(ns, data, epochs, seed, setup.image_embedding, setup.text_embedding)
    weights: dict[str, Any] = {"losses": losses}
    for attribute in TRAINED_PARTS:
        part = getattr(model, attribute, None)
        if not isinstance(part, nn.Module):
            raise ProbeError(f"the trained `CLIPModel` has no module `self.{attribute}`")
        weights.update({f"{attribute}.{key}": value.detach().cpu() for key, value in part.state_dict().items()})
    return weights


# ---------------------------------------------------------------------------------------------- 7.2.4


@grader_class
class _RetrievalModel(nn.Module):
    """A stand-in for a trained CLIPModel: its text encoder returns known features whatever the tokens, and
    its text projection is a standard head with known weights, so the query embedding is known."""

    def __init__(self, text_features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.text_encoder = _StubTextEncoder(text_features)
        self.text_projection = standard().StandardProjectionHead(weight.shape[1], weight.shape[0])
        self.text_projection.projection.load_state_dict({"weight": weight, "bias": bias})


def _plain(item: object) -> object:
    """A returned item as JSON: strings and integers as they are, anything else by its type name."""
    if isinstance(item, str | np.str_):
        return str(item)
    if isinstance(item, int | np.integer) and not isinstance(item, bool):
        return int(item)
    if isinstance(item, torch.Tensor) and item.numel() == 1 and not item.is_floating_point():
        return int(item)
    return f"<{type(item).__name__}>"


def _as_sequence(result: object) -> object:
    """A returned sequence as the statement reads it: a list or tuple as it is; a NumPy array, a pandas
    Series or a tensor (anything with a `tolist()`) through `tolist()`; anything else as it is."""
    if isinstance(result, list | tuple | str):
        return result
    tolist = getattr(result, "tolist", None)
    return tolist() if callable(tolist) else result


@probe
def retrieve(ctx: ProbeContext, tensors: str, query: str, filenames: list[str], k: int) -> dict[str, Any]:
    """`retrieve_images(model, image_embeddings, query, filenames, k)` with a stub model whose query embedding
    is `text_projection(text_features)`; `tensors` holds "image_embeddings", "text_features" and the
    projection's "weight" and "bias". Returns what came back, item by item."""
    given = tensors_argument(tensors)
    model = _RetrievalModel(given["text_features"], given["weight"], given["bias"])
    with _on_cpu(ctx):
        result = ctx.get("retrieve_images")(model, given["image_embeddings"], query, list(filenames), k=k)
    items = _as_sequence(result)
    sequence = isinstance(items, list | tuple)
    return {
        "type": type(result).__name__,
        "items": [_plain(item) for item in items] if sequence else None,
        "text_encoder_calls": model.text_encoder.calls,
    }


@probe
def retrieve_line_counts(
    ctx: ProbeContext, sizes: list[int], k: int, query: str, embedding_dim: int, text_dim: int, seed: int = 0
) -> dict[str, Any]:
    """How often each line of the student's code ran in `retrieve_images` (and the helpers it calls) for each
    number of images in `sizes`, with the same k, query and stub model; the embeddings are random (the counts,
    not the ranking, are observed here)."""
    generator = torch.Generator().manual_seed(seed)
    text_features = torch.randn(1, text_dim, generator=generator)
    weight = torch.randn(embedding_dim, text_dim, generator=generator)
    bias = torch.randn(embedding_dim, generator=generator)
    retrieve_images = ctx.get("retrieve_images")
    calls = []
    for size in sizes:
        if not isinstance(size, int) or not k <= size <= MAX_RETRIEVAL_IMAGES:
            raise ProbeError(f"internal grader error: {size!r} images for k = {k}")
        model = _RetrievalModel(text_features, weight, bias)
        embeddings = torch.nn.functional.normalize(torch.randn(size, embedding_dim, generator=generator), dim=-1)
        filenames = [f"image_{index}.jpg" for index in range(size)]
        call = functools.partial(retrieve_images, model, embeddings, query, filenames, k=k)
        with _on_cpu(ctx):
            _, counts = count_student_lines(call, retrieve_images)
        calls.append({"size": size, **counts.as_json()})
    return {"calls": calls}
