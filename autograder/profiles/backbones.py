"""Image and text backbones for the profiles.

The real profile uses torchvision's ResNet50 (ImageNet weights) and a frozen DistilBERT; nothing can be
downloaded for the offline ``synthetic`` profile, so it gets small stand-ins built at ``prepare`` time that
go through the same library classes and loading code: a torchvision ``ResNet`` "pretrained" on a synthetic
split, and a small ``transformers`` DistilBERT with a WordPiece tokenizer built from the captions, pretrained
on texts in the captions' words (``pretrain_text_model``). Weights always travel as safetensors, never pickle.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet
from tqdm.auto import tqdm

IMAGE_SIZE = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAIN_CLASSES = 10
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TEXT_MAX_POSITIONS = 128
NOTEBOOK_TEXT_MAX_LENGTH = 64

_SMALL_WIDTH_PER_GROUP = 16
_EMBEDDING_DIMS = {"resnet50": 2048, "small": 512}
_DEFAULT_CLASSES = {"resnet50": 1000, "small": PRETRAIN_CLASSES}


class _SlimBottleneck(Bottleneck):
    """torchvision's Bottleneck without the 4x channel expansion.

    The stage widths stay ResNet's 64/128/256/512 while the 3x3 convolutions run at a quarter of that
    (``width_per_group=16``), so the network is a real torchvision ``ResNet`` (same forward, same module
    names, ``fc`` replaceable) at about a tenth of ResNet18's parameters.
    """

    expansion = 1


@dataclass(frozen=True)
class ImageBackboneSpec:
    """Which ResNet a profile uses: ``resnet50`` (real, 2048-d) or ``small`` (synthetic stand-in, 512-d)."""

    arch: str
    embedding_dim: int

    def __post_init__(self) -> None:
        if self.arch not in _EMBEDDING_DIMS:
            raise ValueError(f"unknown image backbone arch {self.arch!r}; valid: {sorted(_EMBEDDING_DIMS)}")
        if self.embedding_dim != _EMBEDDING_DIMS[self.arch]:
            raise ValueError(
                f"image backbone {self.arch!r} produces {_EMBEDDING_DIMS[self.arch]}-d features, "
                f"but the profile says embedding_dim={self.embedding_dim}"
            )


def _new_resnet(arch: str, num_classes: int) -> ResNet:
    if arch == "resnet50":
        return torchvision.models.resnet50(weights=None, num_classes=num_classes)
    return ResNet(_SlimBottleneck, [1, 1, 1, 1], num_classes=num_classes, width_per_group=_SMALL_WIDTH_PER_GROUP)


def _load_weights_file(weights_file: Path) -> dict[str, torch.Tensor]:
    if not weights_file.is_file():
        raise FileNotFoundError(f"image backbone weights file not found: {weights_file}")
    try:
        return load_file(weights_file)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_file}: not a readable safetensors weights file ({error})") from error


def build_resnet(spec: ImageBackboneSpec, weights_file: Path | None) -> ResNet:
    """A torchvision ``ResNet`` for ``spec``, with the weights in ``weights_file`` when one is given.

    The classifier size is taken from the file's ``fc.weight`` so that ImageNet (1000) and synthetic
    pretraining (10 shapes or 12 colours) checkpoints all load strictly; callers replace ``fc`` with
    ``nn.Identity()`` as the notebook does. The model is returned in training mode, trainable.
    """
    state = _load_weights_file(Path(weights_file)) if weights_file is not None else None
    num_classes = _DEFAULT_CLASSES[spec.arch]
    if state is not None and "fc.weight" in state:
        num_classes = state["fc.weight"].shape[0]
    model = _new_resnet(spec.arch, num_classes)
    if state is not None:
        missing, unexpected = _state_dict_mismatch(model, state)
        if missing or unexpected:
            raise ValueError(
                f"{weights_file}: does not hold {spec.arch!r} ResNet weights; "
                f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{weights_file}: tensor shapes do not match a {spec.arch!r} ResNet: {error}") from error
    return model


def _state_dict_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - state.keys()), sorted(state.keys() - expected)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> ImageNet-normalised floats, as the notebook's ``div(255)`` + ``ImageNetNormalize``."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float().div(255) - mean) / std


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize to uint8, like the PIL resize used to load Flickr8k (and 9x faster on
    uint8 than on floats)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _augmented_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random crop (side 64..full, shared by the batch) resized to 64, with per-image horizontal flips.

    A 64-pixel crop is what the STL-10 pipeline sees and the whole image is what Flickr8k's resize sees,
    so the features are pretrained for both scales.
    """
    height, width = images.shape[-2:]
    side = int(torch.randint(IMAGE_SIZE, min(height, width) + 1, (1,), generator=generator))
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    batch = _resize(images[..., top : top + side, left : left + side].contiguous(), IMAGE_SIZE)
    flip = torch.rand(len(batch), generator=generator) < 0.5
    batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
    return _normalise(batch).contiguous(memory_format=torch.channels_last)


def _check_pretraining_data(images: torch.Tensor, labels: torch.Tensor, classes: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"pretraining images must be uint8 (N, 3, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    if min(images.shape[-2:]) < IMAGE_SIZE:
        raise ValueError(f"pretraining images must be at least {IMAGE_SIZE}x{IMAGE_SIZE}; got {tuple(images.shape)}")
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"pretraining labels must be int64 of shape ({images.shape[0]},); got {labels.dtype} {tuple(labels.shape)}"
        )
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise ValueError(f"pretraining labels must be a non-empty set of class ids 0..{classes - 1}")


def pretrain_small_resnet(
    images: torch.Tensor,
    labels: torch.Tensor,
    out_file: Path,
    seed: int,
    epochs: int,
    progress: bool = True,
    *,
    batch_size: int = 64,
    lr: float = 3e-3,
    classes: int = PRETRAIN_CLASSES,
) -> dict[str, Any]:
    """Stand-in for ImageNet pretraining: train the ``small`` ResNet (a ``classes``-way ``fc``) on labelled images.

    Images are uint8 (N, 3, H, W) with H, W >= 64; training sees random crops resized to 64x64 with
    flips, normalised with the ImageNet statistics as the notebook's CLIP pipeline does. AdamW with a
    cosine schedule; seeded (global RNG state is restored afterwards). The state dict, ``fc``
    included, is written to ``out_file`` with safetensors. Returns ``train_accuracy`` (on the augmented
    batches of the last epoch, which costs nothing extra), ``seconds``, and the per-step ``batch_losses``.
    """
    _check_pretraining_data(images, labels, classes)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1; got {epochs}")
    start_time = time.perf_counter()
    out_file = Path(out_file)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    total_steps = steps_per_epoch * epochs
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = _new_resnet("small", classes).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps))
        )
        model.train()
        with tqdm(total=total_steps, desc="pretraining small ResNet", disable=not progress) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(images), generator=generator)
                correct = 0
                for begin in range(0, len(images), batch_size):
                    index = order[begin : begin + batch_size]
                    logits = model(_augmented_batch(images[index], generator))
                    loss = F.cross_entropy(logits, labels[index])
                    correct += int((logits.argmax(1) == labels[index]).sum())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
    _save_state_dict(model, out_file)
    return {
        "train_accuracy": correct / len(images),
        "seconds": time.perf_counter() - start_time,
        "batch_losses": losses,
    }


def _save_state_dict(model: nn.Module, out_file: Path) -> None:
    """Write atomically so that an interrupted ``prepare`` never leaves a truncated weights file behind."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(out_file.name + ".partial")
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, partial)
    os.replace(partial, out_file)


def _wordpiece_vocab(words: Counter[str], vocab_size: int) -> dict[str, int]:
    """Special tokens, every character seen (word-initial and ``##`` continuation), then the most frequent
    whole words up to ``vocab_size``.

    Counted here rather than with ``tokenizers.trainers.WordPieceTrainer``, whose merges break ties in
    hash-map order: the same captions gave different vocabularies in different processes, and the
    cached caption embeddings must be reproducible. Unseen words of known characters are spelt out in
    pieces; characters never seen map to [UNK], as in BERT.
    """
    characters = sorted({character for word in words for character in word})
    tokens = list(SPECIAL_TOKENS) + characters + [f"##{character}" for character in characters]
    if len(tokens) > vocab_size:
        raise ValueError(f"vocab_size={vocab_size} cannot hold the {len(tokens)} special and character tokens")
    known = set(tokens)
    ranked = sorted((word for word in words if word not in known), key=lambda word: (-words[word], word))
    tokens += ranked[: vocab_size - len(tokens)]
    return {token: index for index, token in enumerate(tokens)}


def build_synthetic_text_model(
    out_dir: Path,
    captions: list[str],
    seed: int,
    dim: int = 128,
    *,
    n_layers: int = 2,
    n_heads: int = 2,
    vocab_size: int = 4000,
    initializer_range: float = 0.05,
) -> None:
    """Write a DistilBERT-shaped tokenizer and model folder that ``AutoTokenizer``/``AutoModel`` load offline.

    The tokenizer is a lowercasing ``tokenizers`` WordPiece with BERT's normaliser, pre-tokenizer, special
    tokens and ``[CLS] ... [SEP]`` template, whose vocabulary comes from ``captions`` (see
    ``_wordpiece_vocab``); the model is a small DistilBERT (2 layers by default; the real shape, 6 layers of
    768 with 12 heads, for the timing-only ``synthetic-full`` profile), randomly initialised from
    ``seed`` (it is frozen in the assignment, so its weights need no training). With transformers' default
    ``initializer_range`` of 0.02 the [CLS] output barely depends on the caption (mean pairwise cosine
    0.9998); 0.05 keeps it linearly informative about the words (cosine ~0.99, closer to a real DistilBERT).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    if not captions or not all(isinstance(caption, str) for caption in captions):
        raise ValueError("build_synthetic_text_model needs a non-empty list of caption strings")
    if dim % n_heads:
        raise ValueError(f"dim must be a multiple of n_heads={n_heads}; got {dim}")
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for caption in captions for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(caption))
    )
    backend = Tokenizer(models.WordPiece(_wordpiece_vocab(words, vocab_size), unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = DistilBertTokenizerFast(
        tokenizer_object=backend,
        do_lower_case=True,
        model_max_length=TEXT_MAX_POSITIONS,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = DistilBertConfig(
        vocab_size=backend.get_vocab_size(),
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        hidden_dim=4 * dim,
        max_position_embeddings=TEXT_MAX_POSITIONS,
        pad_token_id=backend.token_to_id("[PAD]"),
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DistilBertModel(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)


def pretrain_text_model(
    folder: Path,
    texts: list[str],
    targets: torch.Tensor,
    classes: tuple[int, ...],
    seed: int,
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    progress: bool = True,
) -> dict[str, Any]:
    """Stand-in for language pretraining: train the DistilBERT in `folder` (in place) until its [CLS] output tells
    what each text names.

    A random DistilBERT maps every caption to nearly the same [CLS] vector (cosine 0.99), so CLIP cannot tell its
    captions apart and a query such as "a red circle" lands nowhere in particular. Here linear heads on the
    [CLS] output learn `targets` (one column per attribute, `classes[i]` classes in column i) by cross-entropy,
    one pass over `texts` in batches; the heads are then dropped and the model is saved where it was, as
    safetensors. Seeded; the global RNG state is restored. Returns `seconds` and the per-step `batch_losses`.
    """
    from transformers import DistilBertModel, DistilBertTokenizerFast

    if targets.dtype != torch.int64 or targets.shape != (len(texts), len(classes)):
        raise ValueError(
            f"targets must be int64 of shape ({len(texts)}, {len(classes)}); got {targets.dtype} {tuple(targets.shape)}"
        )
    start_time = time.perf_counter()
    folder = Path(folder)
    tokenizer = DistilBertTokenizerFast.from_pretrained(folder, local_files_only=True)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DistilBertModel.from_pretrained(folder, local_files_only=True)
        heads = nn.ModuleList(nn.Linear(model.config.dim, count) for count in classes)
        optimizer = torch.optim.AdamW([*model.parameters(), *heads.parameters()], lr=lr, weight_decay=1e-2)
        model.train()
        steps = range(0, len(texts), batch_size)
        for begin in tqdm(steps, desc="pretraining small DistilBERT", disable=not progress):
            tokens = tokenizer(texts[begin : begin + batch_size], padding=True, return_tensors="pt")
            cls = model(**tokens).last_hidden_state[:, 0]
            batch_targets = targets[begin : begin + batch_size]
            loss = sum(F.cross_entropy(head(cls), batch_targets[:, i]) for i, head in enumerate(heads))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.save_pretrained(folder, safe_serialization=True)
    return {"seconds": time.perf_counter() - start_time, "batch_losses": losses}


def load_text_model(folder: str | Path) -> tuple[Any, nn.Module]:
    """(tokenizer, model in eval mode) from a saved folder or a hub id already in the local HF cache.

    Never touches the network (``local_files_only``): grading runs offline, so a missing model must fail
    here with a message that says how to get it, not hang on a download.
    """
    from transformers import AutoModel, AutoTokenizer

    source = str(folder)
    if (isinstance(folder, Path) or Path(source).exists()) and not (Path(source) / "config.json").is_file():
        raise FileNotFoundError(
            f"text model folder {source} has no config.json (expected a folder written by save_pretrained)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModel.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"text model {source!r} is not available offline ({error}); "
            "run `prepare` for this profile with network access first"
        ) from error
    model.eval()
    return tokenizer, model


def text_embeddings(
    tokenizer: Any,
    model: nn.Module,
    captions: list[str],
    batch_size: int = 64,
    max_length: int = NOTEBOOK_TEXT_MAX_LENGTH,
) -> torch.Tensor:
    """(N, dim) float32 CLS-token outputs: the notebook's ``TextEncoder`` computation, caption by caption.

    Tokenised as the notebook does (``padding=True, truncation=True, max_length=64``) but in batches of
    similar length (less padding to compute); the attention mask makes the padding length irrelevant, so
    these can be cached at ``prepare`` time. Runs on the model's device and returns CPU tensors.
    """
    if not all(isinstance(caption, str) for caption in captions):
        raise TypeError("text_embeddings expects a list of caption strings")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    embeddings = torch.empty(len(captions), model.config.hidden_size)
    if not captions:
        return embeddings
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in tokenizer(captions, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(captions)), key=lengths.__getitem__)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            tokens = tokenizer(
                [captions[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            ).last_hidden_state
            embeddings[index] = hidden[:, 0, :].float().cpu()
    model.train(was_training)
    return embeddings
