"""Training tests judged from weights: what the worker trained, evaluated in the trusted process.

A verdict must rest on observations the student's code cannot make up (DESIGN.md, trust boundary). Features or
logits computed in the student's interpreter can be anything (those of the worker's pretrained backbone, say),
so a training run in the worker sends back only the weights of an architecture the grader defines: the
standard autoencoder (Method I), the standard encoder and a linear classifier (Methods II and III), CLIP's
provided image encoder and the standard heads. Here they are checked against this process's own instance of
that architecture, before anything is decoded (`Architecture.specs`: exact names, shapes and dtypes, given to
`Worker.call` as `expect=`) and after (no other tensor, finite values), loaded into it, and the features,
logits and report figures are computed by this process from the profile's images. Test images and labels
never reach the worker for this (the training labels of Methods II and III must).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from autograder.training import runs
from autograder.worker.protocol import Observation, TensorSpec
from autograder.worker.standard import StandardAutoencoder, StandardEncoder, StandardProjectionHead

SAFETENSORS_DTYPES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
}
FEATURES = 24 * 4 * 4
CLASSES = 10
PROJECTION_DIM = 256
SHOWN_RECONSTRUCTIONS = 8


class WeightsRefused(ValueError):
    """The weights the worker sent are not those of the architecture the grader had trained."""


class Architecture:
    """The grader's own instances of what a training run trains, by the prefix their weights travel under."""

    def __init__(self, parts: dict[str, nn.Module]) -> None:
        self.parts = parts

    def specs(self) -> dict[str, TensorSpec]:
        """Every tensor of every part's state dict, with its exact shape and dtype."""
        return {
            f"{prefix}.{key}": TensorSpec(tuple(value.shape), frozenset({SAFETENSORS_DTYPES[value.dtype]}))
            for prefix, part in self.parts.items()
            for key, value in part.state_dict().items()
        }

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load weights that passed `specs` (the protocol checked names, shapes and dtypes) into the parts."""
        extra = sorted(set(tensors) - set(self.specs()))
        if extra:
            raise WeightsRefused(
                f"they hold tensors the grader's architecture does not have ({', '.join(map(repr, extra[:5]))})"
            )
        broken = [name for name, value in tensors.items() if value.is_floating_point() and not value.isfinite().all()]
        if broken:
            raise WeightsRefused(
                f"they are not finite (NaN or infinite) in {', '.join(map(repr, broken[:5]))}: training diverged"
            )
        for prefix, part in self.parts.items():
            start = prefix + "."
            part.load_state_dict({key[len(start) :]: value for key, value in tensors.items() if key.startswith(start)})


@dataclass
class TrainedRun:
    """A training run's observation with its weights loaded into the grader's architecture (`error`: why not)."""

    observation: Observation
    architecture: Architecture
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def losses(self) -> list[float]:
        """The loss per epoch the run reported (for curves and hints only: it decides nothing)."""
        values = self.observation.data.get("losses")
        if not isinstance(values, list):
            return []
        return [float(value) for value in values if isinstance(value, int | float) and math.isfinite(value)]

    def part(self, prefix: str) -> nn.Module:
        return self.architecture.parts[prefix]


def trained_run(observation: Observation, architecture: Architecture, device: torch.device) -> TrainedRun:
    """Load a successful observation's weights into `architecture`, on `device`."""
    if not observation.ok:
        return TrainedRun(observation, architecture, observation.message)
    try:
        architecture.load(observation.tensors)
    except WeightsRefused as error:
        return TrainedRun(observation, architecture, f"the trained weights the worker sent were refused: {error}")
    for part in architecture.parts.values():
        part.to(device)
    return TrainedRun(observation, architecture)


# ------------------------------------------------------------------------------------ the architectures
def autoencoder_architecture() -> Architecture:
    """Method I: the standard autoencoder the student's `train_ae` trains."""
    return Architecture({"autoencoder": StandardAutoencoder()})


def classifier_architecture() -> Architecture:
    """Methods II and III: the standard encoder and the linear classifier on its flattened features."""
    return Architecture({"encoder": StandardEncoder(), "classifier": nn.Linear(FEATURES, CLASSES)})


def clip_architecture(ns: types.SimpleNamespace, image_embedding: int, text_embedding: int) -> Architecture:
    """CLIP: the provided image encoder (the profile's backbone) and the two standard projection heads."""
    return Architecture(
        {
            "image_encoder": ns.ImageEncoder(),
            "image_projection": StandardProjectionHead(image_embedding, PROJECTION_DIM),
            "text_projection": StandardProjectionHead(text_embedding, PROJECTION_DIM),
        }
    )


# ---------------------------------------------------------------------------------------- evaluation
def autoencoder_features(ns: types.SimpleNamespace, run: TrainedRun, data: runs.RunData) -> dict[str, torch.Tensor]:
    """The trained encoder's features of the labelled images, and the first test images' reconstructions."""
    model = run.part("autoencoder")
    originals = data.test[:SHOWN_RECONSTRUCTIONS]
    model.eval()
    with torch.no_grad():
        reconstructions = model(originals.to(ns.DEVICE).float() / 255).cpu()
    features = runs.encoder_features(ns, model.encoder, data)
    return {**features, "originals": originals, "reconstructions": reconstructions}


def classifier_test_logits(ns: types.SimpleNamespace, run: TrainedRun, data: runs.RunData) -> torch.Tensor:
    return runs.classifier_logits(ns, run.part("encoder"), run.part("classifier"), data.test)


def initialised(make: Callable[[], Architecture], seed: int) -> Architecture:
    """`make()` under `torch.manual_seed(seed)`: the weights a worker's run started from when it built the same
    parts in the same order under that seed, drawn here."""
    torch.manual_seed(seed)
    return make()


def largest_change(run: TrainedRun, initial: Architecture, prefix: str) -> float:
    """How far the trained part `prefix` is from its initialisation (the largest change of any weight)."""
    trained = run.part(prefix).state_dict()
    return max(
        float((trained[key].cpu() - value).abs().max()) for key, value in initial.parts[prefix].state_dict().items()
    )


@torch.no_grad()
def kinship(trained: nn.Module, initial: nn.Module) -> float:
    """How surely `trained` started from `initial`: the smallest, over the weight matrices and kernels, of their
    cosine similarity in units of its spread between independent draws (1/sqrt(number of weights)). Training
    moves weights a little from where they started; two independent initialisations score about N(0, 1)."""
    start = dict(initial.named_parameters())
    return min(
        float(nn.functional.cosine_similarity(value.cpu().flatten(), start[name].flatten(), dim=0))
        * math.sqrt(value.numel())
        for name, value in trained.named_parameters()
        if value.dim() > 1
    )


@torch.no_grad()
def reconstruction_error(autoencoder: nn.Module, images: torch.Tensor) -> float:
    """The mean squared error of an autoencoder's reconstructions of uint8 images, as `train_ae` minimises it."""
    device = next(autoencoder.parameters()).device
    pixels = images.to(device).float() / 255
    autoencoder.eval()
    return float(nn.functional.mse_loss(autoencoder(pixels), pixels))


@torch.no_grad()
def classification_loss(
    encoder: nn.Module, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> float:
    """The mean cross-entropy of a linear classifier on an encoder's flattened features of uint8 images, as
    `train_classifier` minimises it (encoder in eval mode, in batches, on the classifier's device). It needs no
    namespace of the notebook: the public contract test computes it where the solution is not installed."""
    device = next(classifier.parameters()).device
    encoder.to(device).eval()
    total = 0.0
    for start in range(0, len(images), batch_size):
        pixels = images[start : start + batch_size].to(device).float() / 255
        logits = classifier(encoder(pixels).flatten(start_dim=1))
        targets = labels[start : start + batch_size].to(device)
        total += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
    return total / len(images)


def clip_features(ns: types.SimpleNamespace, run: TrainedRun, data: runs.RunData) -> dict[str, torch.Tensor]:
    """The trained image encoder's features of the labelled images (what the linear probe is fitted on)."""
    return runs.image_encoder_features(ns, run.part("image_encoder"), data)
