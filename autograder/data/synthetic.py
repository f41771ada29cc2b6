"""Offline stand-in data: procedurally drawn images of ten shape classes, written in the real STL-10 and
Flickr8k formats so that the synthetic profile exercises the same loading code as the real one.

Class identity lives in shape and layout only: colours, background pattern, position, size, rotation
and noise are drawn independently of the class, and every shape covers the same area, so the mean
colour of an image says nothing about its class. The object is always the lighter of its two colours:
with that one regularity a frozen encoder's features carry some shape information (a random encoder
gets well above chance, an autoencoder's more), while a trained encoder does best. The difficulty knobs
below were tuned so that the problem set's pipeline orders Method III < I < II with clear gaps.
"""

import csv
import functools
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from autograder.data import stl10

# Each class: (name, noun phrase with the colour as {c}, a second phrasing for paraphrases).
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("circle", "a {c} circle", "a round {c} disc"),
    ("ring", "a {c} ring", "a {c} hoop"),
    ("horizontal bar", "a horizontal {c} bar", "a {c} rectangle lying flat"),
    ("vertical bar", "a vertical {c} bar", "a {c} rectangle standing upright"),
    ("plus sign", "a {c} plus sign", "a {c} plus shape"),
    ("diagonal cross", "a {c} diagonal cross", "a {c} letter x"),
    ("pair of dots", "two {c} dots", "a {c} pair of dots side by side"),
    ("triangle", "a {c} triangle", "a {c} triangle pointing down"),
    ("four dots", "four {c} dots", "four {c} dots in a grid"),
    ("checkerboard", "a {c} checkerboard", "a {c} checkered square"),
)
CLASS_NAMES: tuple[str, ...] = tuple(name for name, _, _ in CLASSES)
NUM_CLASSES = len(CLASSES)

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 40), "orange": (240, 140, 30), "yellow": (235, 215, 55), "green": (55, 165, 65),
    "cyan": (60, 200, 215), "blue": (45, 85, 205), "purple": (130, 65, 180), "pink": (240, 135, 185),
    "brown": (130, 80, 45), "white": (240, 240, 235), "black": (25, 25, 30), "gray": (128, 128, 128),
}
_COLOUR_NAMES = tuple(PALETTE)
_RGB = np.array([PALETTE[name] for name in _COLOUR_NAMES], dtype=np.float32) / 255.0
_LUMA = _RGB @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Background patterns: (adjective form, noun form with the colour as {c}).
BACKGROUNDS: tuple[tuple[str, str], ...] = (
    ("a plain {c} background", "a plain {c} backdrop"),
    ("a striped {c} background", "{c} stripes"),
    ("a shaded {c} background", "a {c} gradient"),
)
# Caption templates. The first is the canonical description (`render_images`); a Flickr8k image gets five of
# them in a random order, so that the caption its CLIP pair uses (the first) varies as real captions do: some
# name everything, some only the object, some only its shape. Shape is then what most often tells the images
# of a batch apart, as the subject does in real captions, and CLIP has to learn it.
_TEMPLATES: tuple[str, ...] = (
    "{obj} on {bg}",
    "{bg} with {obj}",
    "{obj2} over {bg2}",
    "a picture of {obj} on {bg2}",
    "{obj2} against {bg}",
    "{obj}",
    "{obj2}",
    "{shape}",
    "{shape2}",
    "a picture of {shape}",
)
CAPTIONS_PER_IMAGE = 5
PATTERN_NAMES: tuple[str, ...] = ("plain", "striped", "shaded")

# Difficulty knobs (lengths in half image sides, intensities in [0, 1]), tuned with the Method I/II/III pipeline.
_POSITION_JITTER = 0.2
_SCALE_RANGE = (0.38, 0.5)
_ROTATION_DEGREES = 15.0
_SHAPE_AREA = 3.0
_COLOUR_JITTER = 0.06
_PIXEL_NOISE = 0.03
_BACKGROUND_AMPLITUDE = 0.12
_STRIPE_FREQUENCY = (8.0, 20.0)
_CHECKER_FREQUENCY = 14.0
_CHUNK = 256

# Independent random streams, so that adding images to one split never changes another.
_STREAM_TRAIN, _STREAM_TEST, _STREAM_UNLABELED, _STREAM_FLICKR, _STREAM_PRETRAIN, _STREAM_TEXT = 1, 2, 3, 4, 5, 6


def _box(u: np.ndarray, v: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(u) - half_w, np.abs(v) - half_h)


def _circle(u: np.ndarray, v: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.sqrt((u - cx) ** 2 + (v - cy) ** 2) - r


def _diagonal_cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = (u + v) * np.float32(0.7071), (u - v) * np.float32(0.7071)
    return np.minimum(_box(a, b, 1.1, 0.22), _box(b, a, 1.1, 0.22))


def _four_dots(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.minimum.reduce([_circle(u, v, sx * 0.6, sy * 0.6, 0.32) for sx in (-1, 1) for sy in (-1, 1)])


def _checkerboard(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    k = _CHECKER_FREQUENCY
    return np.maximum(_box(u, v, 0.9, 0.9), np.sin(u * k) * np.sin(v * k) * 0.1)


# Signed distance-like functions in the shape's own frame (negative inside), one per class.
_SHAPES: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    lambda u, v: _circle(u, v, 0, 0, 1.0),
    lambda u, v: np.abs(_circle(u, v, 0, 0, 0.78)) - 0.22,
    lambda u, v: _box(u, v, 1.0, 0.3),
    lambda u, v: _box(u, v, 0.3, 1.0),
    lambda u, v: np.minimum(_box(u, v, 1.0, 0.25), _box(u, v, 0.25, 1.0)),
    _diagonal_cross,
    lambda u, v: np.minimum(_circle(u, v, -0.55, 0, 0.4), _circle(u, v, 0.55, 0, 0.4)),
    lambda u, v: 1.2 * np.maximum.reduce([-v - 0.5, 0.866 * u + 0.5 * v - 0.5, -0.866 * u + 0.5 * v - 0.5]),
    _four_dots,
    _checkerboard,
)


def _coverage(distance: np.ndarray, pixel: np.ndarray | float) -> np.ndarray:
    """Antialiased inside-ness: 1 inside, 0 outside, a one-pixel ramp across the edge."""
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def _shape_areas() -> np.ndarray:
    """Area of each unit shape, measured on a fine grid, so that all classes can be drawn equally large."""
    grid = (np.arange(400, dtype=np.float32) + 0.5) / 100 - 2.0
    v, u = np.meshgrid(grid, grid, indexing="ij")
    return np.array([_coverage(shape(u, v), 0.01).mean() * 16.0 for shape in _SHAPES])


_SCALE_BY_CLASS = np.sqrt(_SHAPE_AREA / _shape_areas()).astype(np.float32)


def _quantise_with_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 from float images in [0, 1] plus uniform pixel noise of standard deviation _PIXEL_NOISE, drawn
    from random bytes (several times cheaper than Gaussian noise). Overwrites `image`."""
    step = np.float32(255 * _PIXEL_NOISE / 73.9)  # 73.9: standard deviation of a uniform random byte
    image *= 255
    image += np.float32(0.5) - np.float32(127.5) * step
    image += np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape) * step
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def _with_articles(text: str) -> str:
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def _draw(labels: np.ndarray, rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[dict[str, str]]]:
    """uint8 (N, 3, size, size) images; label -1 draws the background only. Also what each image shows."""
    n = len(labels)
    fg_idx = rng.integers(0, len(_COLOUR_NAMES), n)
    bg_idx = (fg_idx + rng.integers(1, len(_COLOUR_NAMES), n)) % len(_COLOUR_NAMES)
    swap = _LUMA[fg_idx] < _LUMA[bg_idx]
    fg_idx, bg_idx = np.where(swap, bg_idx, fg_idx), np.where(swap, fg_idx, bg_idx)
    fg = np.clip(_RGB[fg_idx] + rng.normal(0, _COLOUR_JITTER, (n, 3)), 0, 1).astype(np.float32)
    bg = np.clip(_RGB[bg_idx] + rng.normal(0, _COLOUR_JITTER, (n, 3)), 0, 1).astype(np.float32)
    centre = rng.uniform(-_POSITION_JITTER, _POSITION_JITTER, (n, 2)).astype(np.float32)
    scale = rng.uniform(*_SCALE_RANGE, n).astype(np.float32) * _SCALE_BY_CLASS[np.maximum(labels, 0)]
    angle = np.deg2rad(rng.uniform(-_ROTATION_DEGREES, _ROTATION_DEGREES, n)).astype(np.float32)
    pattern = rng.integers(0, len(BACKGROUNDS), n)
    direction = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    frequency = rng.uniform(*_STRIPE_FREQUENCY, n).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)

    grid = (np.arange(size, dtype=np.float32) + 0.5) / (size / 2) - 1.0
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        cos, sin = np.cos(angle[part])[:, None, None], np.sin(angle[part])[:, None, None]
        x = xs - centre[part, 0, None, None]
        y = ys - centre[part, 1, None, None]
        s = scale[part, None, None]
        u, v = (cos * x + sin * y) / s, (cos * y - sin * x) / s
        mask = np.zeros(u.shape, dtype=np.float32)
        part_labels = labels[part]
        for k in np.unique(part_labels[part_labels >= 0]):
            rows = np.flatnonzero(part_labels == k)
            mask[rows] = _coverage(_SHAPES[k](u[rows], v[rows]), (2.0 / size) / s[rows])
        texture = np.zeros(u.shape, dtype=np.float32)
        for kind in (1, 2):  # striped, shaded; plain backgrounds stay flat
            rows = np.flatnonzero(pattern[part] == kind)
            at = start + rows
            along = np.cos(direction[at])[:, None, None] * xs + np.sin(direction[at])[:, None, None] * ys
            if kind == 1:
                along = np.sin(frequency[at, None, None] * along + phase[at, None, None])
            texture[rows] = along
        texture *= _BACKGROUND_AMPLITUDE
        image = np.empty((len(u), 3, size, size), dtype=np.float32)
        for c in range(3):  # in place, channel by channel: this loop dominates the generation time
            background = texture + bg[part, c, None, None]
            channel = image[:, c]
            np.subtract(fg[part, c, None, None], background, out=channel)
            channel *= mask
            channel += background
        out[part] = _quantise_with_noise(image, rng)
    content = [
        {"fg": _COLOUR_NAMES[f], "bg": _COLOUR_NAMES[b], "pattern": str(p)}
        for f, b, p in zip(fg_idx.tolist(), bg_idx.tolist(), pattern.tolist(), strict=True)
    ]
    return out, content


def _described(label: int, content: dict[str, str]) -> list[str]:
    """Every template filled in for one image, the canonical description first."""
    _, phrase, phrase2 = CLASSES[label]
    bg, bg2 = BACKGROUNDS[int(content["pattern"])]
    words = {
        "obj": phrase.format(c=content["fg"]),
        "obj2": phrase2.format(c=content["fg"]),
        "shape": phrase.replace("{c} ", ""),
        "shape2": phrase2.replace("{c} ", ""),
        "bg": bg.format(c=content["bg"]),
        "bg2": bg2.format(c=content["bg"]),
    }
    return [_with_articles(template.format(**words)) for template in _TEMPLATES]


def _captions(label: int, content: dict[str, str], rng: np.random.Generator) -> list[str]:
    """CAPTIONS_PER_IMAGE different descriptions of one image, in a random order."""
    described = _described(label, content)
    return [described[i] for i in rng.permutation(len(described))[:CAPTIONS_PER_IMAGE]]


def attributes(label: int, content: dict[str, str]) -> dict[str, str]:
    """What one image shows, in the captions' words: the ground truth that retrieval is measured against."""
    return {
        "shape": CLASS_NAMES[label],
        "colour": content["fg"],
        "background": content["bg"],
        "pattern": PATTERN_NAMES[int(content["pattern"])],
    }


def _as_labels(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    array = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    array = array.reshape(-1).astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be class ids 0..{NUM_CLASSES - 1}; got values {array.min()}..{array.max()}")
    return array


def _stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Every class n // 10 or n // 10 + 1 times, in random order."""
    return rng.permutation(np.arange(n) % NUM_CLASSES)


def render_images(
    labels: np.ndarray | torch.Tensor, seed: int, size: int = 96
) -> tuple[torch.Tensor, list[str]]:
    """uint8 (N, 3, size, size) images of the given classes, and a caption saying what each shows."""
    array = _as_labels(labels)
    images, content = _draw(array, np.random.default_rng(seed), size)
    return torch.from_numpy(images), [_described(int(k), c)[0] for k, c in zip(array, content, strict=True)]


def _distractors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unlabeled images that belong to no class: two shapes blended, background only, or a colour field."""
    kinds = rng.integers(0, 3, n)
    out = np.empty((n, 3, 96, 96), dtype=np.uint8)
    blend = np.flatnonzero(kinds == 0)
    first = rng.integers(0, NUM_CLASSES, len(blend))
    second = (first + rng.integers(1, NUM_CLASSES, len(blend))) % NUM_CLASSES
    a, _ = _draw(first, rng, 96)
    b, _ = _draw(second, rng, 96)
    out[blend] = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    empty = np.flatnonzero(kinds == 1)
    out[empty], _ = _draw(np.full(len(empty), -1), rng, 96)
    field = np.flatnonzero(kinds == 2)
    coarse = torch.from_numpy(rng.random((len(field), 3, 4, 4), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(96, 96), mode="bicubic", align_corners=False).numpy()
    out[field] = _quantise_with_noise(smooth, rng)
    return out


def generate_stl10(
    root: str | Path, seed: int, n_train: int, n_test: int, n_unlabeled: int, distractor_fraction: float = 0.3
) -> None:
    """Write root/stl10_binary/ in the real format: balanced train/test, unlabeled with distractors."""
    if not 0.0 <= distractor_fraction <= 1.0:
        raise ValueError(f"distractor_fraction must be in [0, 1], got {distractor_fraction}")
    counts = {"n_train": n_train, "n_test": n_test, "n_unlabeled": n_unlabeled}
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one image (an empty STL-10 file is invalid); got {counts}")
    for split, n, stream in (("train", n_train, _STREAM_TRAIN), ("test", n_test, _STREAM_TEST)):
        rng = np.random.default_rng(_stream_seed(seed, stream))
        labels = _balanced_labels(n, rng)
        images, _ = _draw(labels, rng, 96)
        stl10.write_split(root, split, images, labels)
    rng = np.random.default_rng(_stream_seed(seed, _STREAM_UNLABELED))
    n_distractors = int(round(distractor_fraction * n_unlabeled))
    objects, _ = _draw(rng.integers(0, NUM_CLASSES, n_unlabeled - n_distractors), rng, 96)
    unlabeled = np.concatenate([objects, _distractors(n_distractors, rng)])
    stl10.write_split(root, "unlabeled", unlabeled[rng.permutation(n_unlabeled)], None)
    names = Path(root) / stl10.STL10_FOLDER / "class_names.txt"
    names.write_text("".join(f"{name}\n" for name in CLASS_NAMES))


def generate_flickr8k(root: str | Path, seed: int, n_images: int, size: int = 128) -> dict[str, dict[str, str]]:
    """Write root/Images/<id>.jpg and root/captions.txt (header image,caption; five descriptions per image).

    Returns what each image shows (`attributes`) by file name: nothing in the real format holds it, and the
    grader's tests judge retrieval by it."""
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    rng = np.random.default_rng(_stream_seed(seed, _STREAM_FLICKR))
    labels = _balanced_labels(n_images, rng)
    images_dir = Path(root) / "Images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    shown: dict[str, dict[str, str]] = {}
    for start in range(0, n_images, _CHUNK):
        part = labels[start:start + _CHUNK]
        images, content = _draw(part, rng, size)
        for offset, (label, image, described) in enumerate(zip(part, images, content, strict=True)):
            name = f"synthetic_{start + offset:05d}.jpg"
            Image.fromarray(image.transpose(1, 2, 0)).save(images_dir / name, quality=90)
            rows.extend((name, caption) for caption in _captions(int(label), described, rng))
            shown[name] = attributes(int(label), described)
    with open(Path(root) / "captions.txt", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return shown


# What a pretraining split's labels can say, and how many classes each task has.
PRETRAINING_TASKS: dict[str, int] = {"shape": NUM_CLASSES, "colour": len(PALETTE)}


def pretraining_split(seed: int, n: int, task: str = "shape") -> tuple[torch.Tensor, torch.Tensor]:
    """A labelled split of its own random stream, standing in for ImageNet when pretraining a ResNet.

    The labels are the shape (the STL-10 classes) or the object's colour (`PRETRAINING_TASKS`); the images are the
    same. A backbone pretrained on colour leaves CLIP something to learn, as ImageNet features leave STL-10 room:
    the captions name shapes, and its probe on the shape classes rises only if CLIP training works."""
    if task not in PRETRAINING_TASKS:
        raise ValueError(f"unknown pretraining task {task!r}; valid: {sorted(PRETRAINING_TASKS)}")
    rng = np.random.default_rng(_stream_seed(seed, _STREAM_PRETRAIN))
    labels = _balanced_labels(n, rng)
    images, content = _draw(labels, rng, 96)
    if task == "colour":
        labels = np.array([_COLOUR_NAMES.index(shown["fg"]) for shown in content], dtype=np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


# What `attribute_texts` targets: a class id per attribute, the last id of each meaning "not named".
ATTRIBUTE_CLASSES: dict[str, int] = {
    "shape": NUM_CLASSES + 1,
    "colour": len(PALETTE) + 1,
    "background": len(PALETTE) + 1,
    "pattern": len(BACKGROUNDS) + 1,
}


def attribute_texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Texts in the captions' words, and (n, 4) int64 targets saying which shape, colours and pattern each names
    (the columns of ATTRIBUTE_CLASSES, "not named" where it says nothing of one).

    What the synthetic text model is pretrained on, standing in for the language a real DistilBERT has learnt:
    whole captions, and the short phrases a query is made of ("a red circle", "blue stripes")."""
    rng = np.random.default_rng(_stream_seed(seed, _STREAM_TEXT))
    vocabularies = {
        "shape": CLASS_NAMES, "colour": _COLOUR_NAMES, "background": _COLOUR_NAMES, "pattern": PATTERN_NAMES
    }
    texts: list[str] = []
    targets: list[list[int]] = []
    for _ in range(n):
        label = int(rng.integers(NUM_CLASSES))
        fg = int(rng.integers(len(_COLOUR_NAMES)))
        bg = int((fg + rng.integers(1, len(_COLOUR_NAMES))) % len(_COLOUR_NAMES))
        pattern = int(rng.integers(len(BACKGROUNDS)))
        content = {"fg": _COLOUR_NAMES[fg], "bg": _COLOUR_NAMES[bg], "pattern": str(pattern)}
        candidates = _described(label, content) + _background_phrases(content["bg"], pattern)
        text = candidates[int(rng.integers(len(candidates)))]
        named = _phrasebook()[text.lower()]
        texts.append(text)
        targets.append([
            vocabularies[key].index(named[key]) if key in named else ATTRIBUTE_CLASSES[key] - 1
            for key in ATTRIBUTE_CLASSES
        ])
    return texts, torch.tensor(targets, dtype=torch.int64)


def named_attributes(text: str) -> dict[str, str] | None:
    """The attributes (as `attributes` names them) that a text in the captions' words names, or None for a text
    the generator never writes: "a red circle" names the shape and its colour, "blue stripes" the background."""
    return _phrasebook().get(text.strip().lower())


@functools.cache
def _phrasebook() -> dict[str, dict[str, str]]:
    book: dict[str, dict[str, str]] = {}
    for label in range(NUM_CLASSES):
        for fg in _COLOUR_NAMES:
            for bg in _COLOUR_NAMES:
                for pattern in range(len(BACKGROUNDS)):
                    content = {"fg": fg, "bg": bg, "pattern": str(pattern)}
                    shown = attributes(label, content)
                    for template, text in zip(_TEMPLATES, _described(label, content), strict=True):
                        named = {"shape"} | ({"colour"} if "{obj" in template else set())
                        named |= {"background", "pattern"} if "{bg" in template else set()
                        book[text.lower()] = {key: shown[key] for key in named}
                    for text in _background_phrases(bg, pattern):
                        book[text.lower()] = {"background": bg, "pattern": PATTERN_NAMES[pattern]}
    return book


def _background_phrases(colour: str, pattern: int) -> list[str]:
    """The background alone, as a query names it ("blue stripes")."""
    return [_with_articles(phrase.format(c=colour)) for phrase in BACKGROUNDS[pattern]]
