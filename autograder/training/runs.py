"""Training runs on a profile's budget, written against the assignment's names.

`ns` is a namespace holding the provided code plus, for each graded name, the implementation under test
(the student's for one component, the reference's for the others). These functions run where that code
runs. The `train_*` functions return the trained models, whose weights are all the worker sends back: the
trusted process loads them into its own instances and computes the features and logits (`*_features`,
`classifier_logits`) itself; accuracy is decided there, from labels these runs never see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import load_file
from torch import nn

from autograder.profiles.prepare import PreparedPaths
from autograder.profiles.profile import Profile

FEATURE_BATCH = 256
CLASSES = 10


def random_images(count: int, seed: int) -> torch.Tensor:
    """uint8 noise images drawn from `seed`: what the contract probes train on in the worker, drawn again by the
    trusted side to judge the weights the run sent back."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, 64, 64), generator=generator, dtype=torch.uint8)


def random_labels(count: int, seed: int) -> torch.Tensor:
    """Class labels drawn from `seed`, beside `random_images(count, seed)` (from a generator of their own)."""
    return torch.randint(0, CLASSES, (count,), generator=torch.Generator().manual_seed(seed + 1))


@dataclass(frozen=True)
class RunData:
    """What training needs: images of every split, and no labels: these runs execute where student code
    runs, which may not read the label file. Training labels are an argument of the run that needs them."""

    unlabeled: torch.Tensor
    train: torch.Tensor
    test: torch.Tensor
    clip_train: torch.Tensor
    clip_train_captions: list[str]
    clip_val: torch.Tensor
    clip_val_captions: list[str]

    @classmethod
    def load(cls, profile: Profile) -> RunData:
        paths = PreparedPaths(profile.cache_dir())
        stl10 = load_file(str(paths.stl10_images))
        clip = load_file(str(paths.clip_images))
        pairs = json.loads(paths.clip_pairs.read_text())
        unlabeled = stl10["unlabeled"]
        if profile.grading_budgets.unlabeled_subset is not None:
            unlabeled = unlabeled[: profile.grading_budgets.unlabeled_subset]
        return cls(
            unlabeled,
            stl10["train"],
            stl10["test"],
            clip["train"],
            [caption for _, caption in pairs["train"]],
            clip["val"],
            [caption for _, caption in pairs["val"]],
        )


@torch.no_grad()
def encode(ns, encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Features of uint8 images in batches, in eval mode, on the CPU."""
    was_training = encoder.training
    encoder.eval()
    batches = ns.TensorBatches(images, batch_size=FEATURE_BATCH)
    features = torch.cat([encoder(batch).flatten(start_dim=1).cpu() for batch, _ in batches])
    encoder.train(was_training)
    return features


def train_autoencoder(ns, data: RunData, epochs: int, seed: int, batch_size: int) -> tuple[nn.Module, list[float]]:
    """Method I's training: the autoencoder trained with `train_ae` on the unlabeled images, and its losses."""
    torch.manual_seed(seed)
    model = ns.Autoencoder().to(ns.DEVICE)
    loader = ns.TensorBatches(data.unlabeled, batch_size=batch_size, shuffle=True, seed=seed)
    model, losses = ns.train_ae(model, loader, epochs=epochs)
    return model, [float(loss) for loss in losses]


def encoder_features(ns, encoder: nn.Module, data: RunData) -> dict[str, torch.Tensor]:
    """The features of the labelled train and test images that the linear probe is fitted and scored on."""
    return {"train": encode(ns, encoder, data.train), "test": encode(ns, encoder, data.test)}


def autoencoder_features(
    ns, data: RunData, epochs: int, seed: int, batch_size: int
) -> dict[str, torch.Tensor | list[float]]:
    """Method I: train the autoencoder with `train_ae`, return its encoder's features."""
    model, losses = train_autoencoder(ns, data, epochs, seed, batch_size)
    return {**encoder_features(ns, model.encoder, data), "losses": losses}


def random_encoder_features(ns, data: RunData, seed: int) -> dict[str, torch.Tensor]:
    """Method III: a frozen, randomly initialised encoder."""
    torch.manual_seed(seed)
    encoder = ns.Encoder().to(ns.DEVICE)
    return {"train": encode(ns, encoder, data.train), "test": encode(ns, encoder, data.test)}


def train_supervised(
    ns, data: RunData, train_labels: torch.Tensor, epochs: int, seed: int, batch_size: int
) -> tuple[nn.Module, nn.Module, list[float]]:
    """Method II's training: a new encoder and a linear classifier trained together by
    `train_classifier(..., supervised=True)`; the encoder, the classifier it returned, and its losses."""
    torch.manual_seed(seed)
    encoder = ns.Encoder().to(ns.DEVICE)
    cls = nn.Linear(24 * 4 * 4, 10).to(ns.DEVICE)
    loader = ns.TensorBatches(data.train, train_labels, batch_size=batch_size, shuffle=True, seed=seed)
    cls, losses = ns.train_classifier(encoder, cls, loader, epochs=epochs, supervised=True)
    return encoder, cls, [float(loss) for loss in losses]


def classifier_logits(ns, encoder: nn.Module, cls: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The logits of a linear classifier on an encoder's flattened features."""
    return encode(ns, nn.Sequential(encoder, nn.Flatten(), cls), images)


def supervised_logits(
    ns, data: RunData, train_labels: torch.Tensor, epochs: int, seed: int, batch_size: int
) -> dict[str, torch.Tensor | list[float]]:
    """Method II: encoder and classifier trained together with `train_classifier(..., supervised=True)`."""
    encoder, cls, losses = train_supervised(ns, data, train_labels, epochs, seed, batch_size)
    return {"test": classifier_logits(ns, encoder, cls, data.test), "losses": losses}


def train_clip_model(ns, data: RunData, epochs: int, seed: int, image_embedding: int, text_embedding: int):
    """CLIP trained with the provided `train_clip` on the captioned split; the model and its losses."""
    torch.manual_seed(seed)
    model = ns.CLIPModel(
        temperature=ns.CLIP_CONFIG["temperature"], image_embedding=image_embedding, text_embedding=text_embedding
    ).to(ns.DEVICE)
    batches = ns.ClipBatches(
        data.clip_train, data.clip_train_captions, batch_size=ns.CLIP_CONFIG["batch_size"], shuffle=True, seed=seed
    )
    model, losses = ns.train_clip(model, batches, epochs=epochs)
    return model, [float(loss) for loss in losses]


def image_encoder_features(ns, image_encoder: nn.Module, data: RunData) -> dict[str, torch.Tensor]:
    """The features of CLIP's image encoder (after the ImageNet normalisation its batches get) on STL-10."""
    return encoder_features(ns, nn.Sequential(ns.ImageNetNormalize(), image_encoder), data)
