# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---


# %% [markdown]
# # Problem Set 7: Representation Learning
#
# In this problem set you learn image representations in two ways and measure how useful they are.
#
# **Part 7.1 — Autoencoders (5 points).** You train a small convolutional autoencoder on unlabeled
# STL-10 images and then ask how much its encoder learned about object classes: a linear classifier
# (a *linear probe*) is trained on top of the frozen encoder and evaluated on the labelled test set.
# You compare three encoders: the autoencoder's (Method I), one trained jointly with the classifier on
# the labels (Method II), and a randomly initialised one (Method III).
#
# **Part 7.2 — CLIP (5 points).** You build a simplified CLIP: a trainable ResNet50 image encoder and a
# frozen DistilBERT text encoder, each followed by a projection head, trained with the symmetric
# InfoNCE loss on Flickr8k image–caption pairs. You then probe the image encoder on STL-10 and use the
# model to retrieve images from a text query.
#
# Write your code only where you see `# TODO` and `raise NotImplementedError`. Do not rename the
# functions, classes or attributes named in the instructions: the autograder calls them by name, and
# grades each part on its own, so a mistake in one part does not cost points in another.
#
# Use a GPU runtime (Runtime → Change runtime type → GPU).

# %%
import math
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# %%
# Reading STL-10's binary files (downloaded below): uint8 images, channel-major, columns first.
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
)
IMAGE_SIZE = 96
IMAGE_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE
STL10_FOLDER = "stl10_binary"
STL10_SPLIT_FILES: dict[str, tuple[str, str | None]] = {
    "train": ("train_X.bin", "train_y.bin"),
    "test": ("test_X.bin", "test_y.bin"),
    "unlabeled": ("unlabeled_X.bin", None),
}
EXPECTED_MD5: dict[str, str] = {
    "train_X.bin": "918c2871b30a85fa023e0c44e0bee87f",
    "train_y.bin": "5a34089d4802c674881badbb80307741",
    "test_X.bin": "7f263ba9f9e0b06b93213547f721ac82",
    "test_y.bin": "36f9794fa4beb8a2c72628de14fa638e",
    "unlabeled_X.bin": "5242ba1fed5e4be9e1e742405eb56ca4",
}


class STL10FormatError(ValueError):
    """A file under stl10_binary/ exists but does not hold what the STL-10 format says it should."""


def _stl10_split_paths(root: str | Path, split: str) -> tuple[Path, Path | None]:
    if split not in STL10_SPLIT_FILES:
        raise ValueError(f"unknown STL-10 split {split!r}; valid splits are {sorted(STL10_SPLIT_FILES)}")
    folder = Path(root) / STL10_FOLDER
    x_name, y_name = STL10_SPLIT_FILES[split]
    return folder / x_name, (folder / y_name if y_name is not None else None)


def _stl10_require(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"STL-10 file not found: {path}. The data folder must contain {STL10_FOLDER}/ "
            f"(pass the folder that holds {STL10_FOLDER}/, not {STL10_FOLDER}/ itself)"
        )


def _stl10_image_count(x_path: Path) -> int:
    size = x_path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise STL10FormatError(
            f"{x_path}: size {size} bytes is not a positive multiple of {IMAGE_BYTES} bytes per image "
            "(truncated or not an STL-10 image file)"
        )
    return size // IMAGE_BYTES


def _stl10_read_labels(y_path: Path, n_images: int, x_path: Path) -> np.ndarray:
    labels = np.fromfile(y_path, dtype=np.uint8)
    if labels.size != n_images:
        raise STL10FormatError(f"{y_path}: holds {labels.size} labels but {x_path} holds {n_images} images")
    bad = (labels < 1) | (labels > len(CLASS_NAMES))
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise STL10FormatError(
            f"{y_path}: label {int(labels[where])} at position {where} is outside 1..{len(CLASS_NAMES)} "
            "(labels on disk are 1-based)"
        )
    return labels.astype(np.int64) - 1


def read_split(
    root: str | Path, split: str, indices: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, 3, 96, 96) in row/column order and 0-based int64 labels (None for "unlabeled").

    `indices` selects images by position; only those are read from the memory-mapped file.
    """
    x_path, y_path = _stl10_split_paths(root, split)
    _stl10_require(x_path)
    if y_path is not None:
        _stl10_require(y_path)
    n = _stl10_image_count(x_path)
    labels = _stl10_read_labels(y_path, n, x_path) if y_path is not None else None
    images = np.memmap(x_path, dtype=np.uint8, mode="r", shape=(n, 3, IMAGE_SIZE, IMAGE_SIZE))
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"{x_path}: index {bad} is out of range; valid indices are 0..{n - 1}")
        images = images[idx]
        if labels is not None:
            labels = labels[idx]
    # On disk each 96x96 channel is stored column-major: swap the last two axes to get rows first. The
    # copy reads straight from the memory map into memory the returned tensor owns.
    out = torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 1, 3, 2)))
    return out, (torch.from_numpy(labels) if labels is not None else None)


def write_split(
    root: str | Path, split: str, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None
) -> None:
    """Write a split in the real on-disk format (the inverse of read_split), plus class_names.txt."""
    x_path, y_path = _stl10_split_paths(root, split)
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"images for {x_path.name} must be uint8 of shape (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}); "
            f"got {arr.dtype} {tuple(arr.shape)}"
        )
    if y_path is None and labels is not None:
        raise ValueError(f"split {split!r} has no label file; pass labels=None")
    if y_path is not None:
        if labels is None:
            raise ValueError(f"split {split!r} needs labels (0-based, one per image)")
        lab = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        lab = lab.reshape(-1).astype(np.int64)
        if lab.size != arr.shape[0]:
            raise ValueError(f"{lab.size} labels for {arr.shape[0]} images in split {split!r}")
        if lab.size and (lab.min() < 0 or lab.max() >= len(CLASS_NAMES)):
            raise ValueError(f"labels for split {split!r} must be in 0..{len(CLASS_NAMES) - 1}")
    x_path.parent.mkdir(parents=True, exist_ok=True)
    with open(x_path, "wb") as f:
        for start in range(0, arr.shape[0], 1024):
            f.write(np.ascontiguousarray(arr[start:start + 1024].transpose(0, 1, 3, 2)).tobytes())
    if y_path is not None:
        (lab + 1).astype(np.uint8).tofile(y_path)
    names = x_path.parent / "class_names.txt"
    if not names.exists():
        names.write_text("".join(f"{name}\n" for name in CLASS_NAMES))


def verify_checksums(root: str | Path) -> list[str]:
    """Names of the STL-10 files whose md5 differs from the official one ("<name> (missing)" if absent)."""
    folder = Path(root) / STL10_FOLDER
    differing = []
    for name, expected in EXPECTED_MD5.items():
        path = folder / name
        if not path.is_file():
            differing.append(f"{name} (missing)")
            continue
        digest = hashlib.md5()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            differing.append(name)
    return differing

# %%
# Reading Flickr8k (Images/ and captions.txt): one caption per image and an 80/20 split.
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FLICKR8K_HEADER = ("image", "caption")


def read_captions(folder: str | Path) -> list[tuple[str, str]]:
    """All (filename, caption) rows of captions.txt, after checking that every listed image exists."""
    folder = Path(folder)
    path = folder / "captions.txt"
    images_dir = folder / "Images"
    if not path.is_file():
        raise FileNotFoundError(f"Flickr8k captions not found: {path} (the folder must hold captions.txt and Images/)")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Flickr8k image folder not found: {images_dir}")
    rows: list[tuple[str, str]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != FLICKR8K_HEADER:
            raise ValueError(f"{path}: first line must be the header 'image,caption', got {header!r}")
        for row in reader:
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{path}, line {reader.line_num}: expected 2 fields (image, caption), got {len(row)}; "
                    "captions containing commas must be quoted"
                )
            rows.append((row[0].strip(), row[1].strip()))
    if not rows:
        raise ValueError(f"{path}: no caption rows after the header")
    present = {p.name for p in images_dir.iterdir()}
    missing = sorted({name for name, _ in rows} - present)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{path} lists images missing from {images_dir}: {shown}")
    return rows


def one_caption_per_image(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first caption of each image, images in order of first appearance."""
    seen: dict[str, str] = {}
    for name, caption in rows:
        seen.setdefault(name, caption)
    return list(seen.items())


def train_val_split(pairs: Sequence, val_fraction: float = 0.2, seed: int = 42) -> tuple[list, list]:
    """Seeded permutation; the first round((1 - val_fraction) * n) items train, the rest validate."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n = len(pairs)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round((1.0 - val_fraction) * n))
    return [pairs[i] for i in order[:n_train]], [pairs[i] for i in order[n_train:]]


def load_images(folder: str | Path, filenames: Sequence[str], size: int = 64) -> torch.Tensor:
    """uint8 (N, 3, size, size): each Images/<name> converted to RGB and resized bilinearly."""
    images_dir = Path(folder) / "Images"
    out = torch.empty((len(filenames), 3, size, size), dtype=torch.uint8)
    for i, name in enumerate(filenames):
        path = images_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"Flickr8k image not found: {path}")
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
        out[i] = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy())
    return out

# %%
# Where the data, the pretrained backbones and the training budgets come from. On Colab (PS7_PROFILE
# unset) everything is downloaded; the autograder sets PS7_PROFILE to use its offline, prepared copies.
FLICKR8K_URL = os.environ.get("FLICKR8K_URL", "")  # the course staff give you this address
UNLABELED_IMAGES = 10_000  # the first 10,000 of STL-10's 100,000 unlabeled images keep training short


def download_flickr8k(root):
    """Fetch and unpack Flickr8k (Images/ and captions.txt) into root/flickr8k once."""
    import urllib.request
    import zipfile

    folder = os.path.join(root, "flickr8k")
    if not os.path.isfile(os.path.join(folder, "captions.txt")):
        if not FLICKR8K_URL:
            raise RuntimeError("Set FLICKR8K_URL to the Flickr8k zip address given on the course page.")
        os.makedirs(folder, exist_ok=True)
        archive, _ = urllib.request.urlretrieve(FLICKR8K_URL, os.path.join(root, "flickr8k.zip"))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)
    return folder


def colab_setup(root="./data"):
    """The real assignment: STL-10, Flickr8k, ResNet50 (ImageNet weights) and DistilBERT."""
    torchvision.datasets.STL10(root, split="test", download=True)  # fetches and unpacks stl10_binary/
    return SimpleNamespace(
        name="colab",
        seed=0,
        stl10_root=root,
        flickr8k_root=download_flickr8k(root),
        unlabeled_subset=UNLABELED_IMAGES,
        ae_epochs=100,
        probe_epochs=100,
        clip_epochs=3,
        image_backbone=lambda: torchvision.models.resnet50(
            weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2
        ),
        text_model="distilbert-base-uncased",
        image_embedding=2048,
        text_embedding=768,
        cached_text_features=lambda input_ids, attention_mask: None,
        example_queries=["a dog running on the grass", "children playing in the water"],
    )


PS7_PROFILE = os.environ.get("PS7_PROFILE")
if PS7_PROFILE:
    from autograder.profiles.seam import notebook_setup

    SETUP = notebook_setup(PS7_PROFILE)
else:
    SETUP = colab_setup()
torch.manual_seed(SETUP.seed)

# %%
def center_crop(images, size=64):
    """Crop the centre of a batch of images (N, C, H, W); cropping the whole tensor at once is fast."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


class TensorBatches:
    """Minibatches (float images in [0, 1], labels) from uint8 images kept in memory.

    Converting a whole batch at once is much faster than a per-image Dataset. Images without labels
    (the unlabeled split) get the label -1, as torchvision's STL10 does.
    """

    def __init__(self, images, labels=None, batch_size=128, shuffle=False, seed=0):
        self.images = images
        self.labels = labels if labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        count = len(self.images)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images[index].to(DEVICE).float().div_(255), self.labels[index].to(DEVICE)


def show_images(images, titles=None, columns=8):
    """Plot a few images (N, 3, H, W) in [0, 1]; does nothing where matplotlib is unavailable."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    images = images.detach().cpu().clamp(0, 1)
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].permute(1, 2, 0).numpy())
            if titles is not None:
                axis.set_title(str(titles[index]), fontsize=8)
    plt.show()
    plt.close(figure)

# %% [markdown]
# ## 7.1 Autoencoders
#
# We use STL-10: 96×96 colour images of ten object classes, with 5,000 labelled training images,
# 8,000 labelled test images and 100,000 unlabeled images (which also contain objects of other kinds).
# To keep training time short, we use the first 10,000 unlabeled images. All images are cropped to their
# central 64×64 pixels.

# %%
unlabeled_indices = None if SETUP.unlabeled_subset is None else range(SETUP.unlabeled_subset)
unlabeled_images, _ = read_split(SETUP.stl10_root, "unlabeled", indices=unlabeled_indices)
train_images, train_labels = read_split(SETUP.stl10_root, "train")
test_images, test_labels = read_split(SETUP.stl10_root, "test")
unlabeled_images, train_images, test_images = (
    center_crop(images).contiguous() for images in (unlabeled_images, train_images, test_images)
)
print("unlabeled", tuple(unlabeled_images.shape), "train", tuple(train_images.shape), "test", tuple(test_images.shape))

unlabeled_loader = TensorBatches(unlabeled_images, batch_size=128, shuffle=True, seed=SETUP.seed)
train_loader = TensorBatches(train_images, train_labels, batch_size=128, shuffle=True, seed=SETUP.seed)
test_loader = TensorBatches(test_images, test_labels, batch_size=256)
show_images(train_images[:8].float() / 255, [CLASS_NAMES[label] for label in train_labels[:8]])

# %% [markdown]
# ### 7.1.1 Encoder (1 point)
#
# Implement `Encoder(in_channels=3)`: four `nn.Conv2d` layers with 3 → 12 → 24 → 48 → 24 channels,
# each with kernel size 4, stride 2 and padding 1, and a ReLU after every convolution. A 64×64 image
# becomes a feature map of shape (N, 24, 4, 4). The encoder has 42,156 parameters.

# %%
class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 12, kernel_size=4, stride=2, padding=1)  # 64 -> 32
        self.c2 = nn.Conv2d(12, 24, kernel_size=4, stride=2, padding=1)  # 32 -> 16
        self.c3 = nn.Conv2d(24, 48, kernel_size=4, stride=2, padding=1)  # 16 -> 8
        self.c4 = nn.Conv2d(48, 24, kernel_size=4, stride=2, padding=1)  # 8 -> 4

    def forward(self, x):
        x = self.c1(x)
        x = F.relu(x)
        x = self.c2(x)
        x = F.relu(x)
        x = self.c3(x)
        x = F.relu(x)
        x = self.c4(x)
        x = F.relu(x)
        return x

# %% [markdown]
# ### 7.1.2 Decoder (1 point)
#
# Implement `Decoder(out_channels=3, feat_dim=64)`, the mirror image of the encoder: four
# `nn.ConvTranspose2d` layers with 24 → 48 → 24 → 12 → 3 channels (kernel 4, stride 2, padding 1), a
# ReLU between layers and a Sigmoid at the end, so that pixels lie in [0, 1]. It maps (N, 24, 4, 4)
# to (N, 3, 64, 64) and has 42,135 parameters.

# %%
class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super(Decoder, self).__init__()
        relu = nn.ReLU()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(24, 48, 4, 2, 1), relu,
            nn.ConvTranspose2d(48, 24, 4, 2, 1), relu,
            nn.ConvTranspose2d(24, 12, 4, 2, 1), relu,
            nn.ConvTranspose2d(12, out_channels, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.layers(x)

# %%
class Autoencoder(nn.Module):
    def __init__(self, in_channels=3, feat_dim=64):
        super().__init__()
        self.encoder = Encoder(in_channels)
        self.decoder = Decoder(in_channels, feat_dim)

    def forward(self, x):
        return self.decoder(self.encoder(x))

# %% [markdown]
# ### 7.1.3 Training the autoencoder (1 point)
#
# Complete `train_ae(model, dataloader, epochs)`. For each minibatch, reconstruct the images and take
# one optimisation step on the mean squared error between the reconstruction and the input, with the
# Adam optimiser created for you (learning rate 1e-3). Return the model and the list of mean losses
# per epoch.

# %%
def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="autoencoder"):
        epoch_loss = 0.0
        for images, _ in dataloader:
            recon = model(images)
            loss = ((recon - images) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return model, loss_traj

# %%
ae = Autoencoder().to(DEVICE)
ae, ae_loss_traj = train_ae(ae, unlabeled_loader, epochs=SETUP.ae_epochs)
print("final reconstruction loss", ae_loss_traj[-1])
with torch.no_grad():
    originals = test_images[:8].to(DEVICE).float() / 255
    show_images(torch.cat([originals, ae(originals)]))

# %% [markdown]
# ### 7.1.4 Linear probes (1 point)
#
# Complete `train_classifier(encoder, cls, dataloader, epochs, supervised)`. The classifier `cls` is a
# linear layer on the flattened encoder features. With `supervised=False` the encoder stays frozen and
# only the classifier is trained; with `supervised=True` encoder and classifier are trained together.
# Use Adam with learning rate 1e-3 and weight decay 1e-4, and the cross-entropy loss. Then set the
# `supervised` argument of each of the three method cells below.

# %%
def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):
    params = list(cls.parameters())
    if supervised:
        params = params + list(encoder.parameters())
    optim = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="classifier"):
        epoch_loss = 0.0
        for images, labels in dataloader:
            z = encoder(images)
            if not supervised:
                z = z.detach()
            logits = cls(z.reshape(z.shape[0], -1))
            loss = F.cross_entropy(logits, labels)
            optim.zero_grad()
            loss.backward()
            optim.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return cls, loss_traj

# %%
@torch.no_grad()
def test(encoder, cls, dataloader):
    """Accuracy of the linear classifier `cls` on the encoder's features."""
    was_training = encoder.training, cls.training
    encoder.eval()
    cls.eval()
    correct = total = 0
    for images, labels in dataloader:
        logits = cls(encoder(images).flatten(start_dim=1))
        correct += (logits.argmax(dim=1) == labels).sum().item()
        total += len(labels)
    encoder.train(was_training[0])
    cls.train(was_training[1])
    return correct / total

# %%
# Method I: the autoencoder's encoder, frozen.
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method1_loss_traj = train_classifier(
    ae.encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    supervised=False,
)
method1_accuracy = test(ae.encoder, cls, test_loader)
print(f"Method I accuracy: {method1_accuracy:.3f}")

# %%
# Method II: a new encoder trained together with the classifier.
encoder = Encoder().to(DEVICE)
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method2_loss_traj = train_classifier(
    encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    supervised=True,
)
method2_accuracy = test(encoder, cls, test_loader)
print(f"Method II accuracy: {method2_accuracy:.3f}")

# %%
# Method III: a randomly initialised encoder, frozen.
random_encoder = Encoder().to(DEVICE)
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method3_loss_traj = train_classifier(
    random_encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    supervised=False,
)
method3_accuracy = test(random_encoder, cls, test_loader)
print(f"Method III accuracy: {method3_accuracy:.3f}")

# %% [markdown]
# ### 7.1.5 Report (1 point)
#
# Write the test accuracy of each method on its own line, in the form `method 1 accuracy: 0.30` (a
# fraction or a percentage; `Method I: 30%` or a table with one row per method are read too). Which
# method works best, which worst, and why?
#
# method 1 accuracy: 0.319
# method 2 accuracy: 0.441
# method 3 accuracy: 0.262
#
# Method 2 works best since the encoder is trained with the labels. Method 3 is the worst because a random
# encoder has not learned anything, the autoencoder features are somewhere in between.

# %% [markdown]
# ## 7.2 CLIP
#
# CLIP learns a shared embedding space for images and text: the embeddings of an image and of its
# caption should be close, and those of unrelated pairs far apart. Our simplified CLIP uses a
# ResNet50 pretrained on ImageNet as the image encoder (trained further) and DistilBERT as the text
# encoder (frozen), each followed by a projection head into a 256-dimensional space. It is trained on
# Flickr8k, one caption per image, with images resized to 64×64.

# %%
CLIP_CONFIG = {
    "batch_size": 32,
    "head_lr": 1e-3,
    "image_encoder_lr": 1e-4,
    "weight_decay": 1e-3,
    "temperature": 0.07,
    "projection_dim": 256,
    "image_size": 64,
}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TOKENIZER = AutoTokenizer.from_pretrained(SETUP.text_model)


class ImageNetNormalize(nn.Module):
    """Map images in [0, 1] to the statistics the pretrained ResNet expects."""

    def forward(self, x):
        return (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)


class ImageEncoder(nn.Module):
    """ResNet50 with ImageNet weights and its classifier removed: 2048 features per image, trainable."""

    def __init__(self):
        super().__init__()
        self.model = SETUP.image_backbone()
        self.model.fc = nn.Identity()
        for parameter in self.model.parameters():
            parameter.requires_grad = True

    def forward(self, x):
        return self.model(x)


class TextEncoder(nn.Module):
    """DistilBERT, frozen; a caption is represented by the output at its first ([CLS]) token."""

    def __init__(self):
        super().__init__()
        self.model = AutoModel.from_pretrained(SETUP.text_model)
        for parameter in self.model.parameters():
            parameter.requires_grad = False
        self.target_token_idx = 0

    def forward(self, input_ids, attention_mask):
        cached = SETUP.cached_text_features(input_ids, attention_mask)
        if cached is not None:
            return cached
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return output.last_hidden_state[:, self.target_token_idx, :]


class ClipBatches:
    """Minibatches {"image", "input_ids", "attention_mask"} from uint8 images and tokenised captions."""

    def __init__(self, images, captions, batch_size=32, shuffle=False, seed=0):
        self.images = images
        self.tokens = TOKENIZER(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        count = len(self.images)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index].to(DEVICE).float().div_(255)
            yield {
                "image": ImageNetNormalize()(images),
                "input_ids": self.tokens["input_ids"][index].to(DEVICE),
                "attention_mask": self.tokens["attention_mask"][index].to(DEVICE),
            }

# %% [markdown]
# ### 7.2.1 Projection head (1 point)
#
# Implement `ProjectionHead(embedding_dim, projection_dim=256)`: a single linear layer from
# `embedding_dim` to `projection_dim`, whose outputs are L2-normalised (each row has norm 1).

# %%
class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super(ProjectionHead, self).__init__()
        self.linear = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x):
        out = self.linear(x)
        out = out / out.norm(dim=-1, keepdim=True)
        return out

# %% [markdown]
# ### 7.2.2 The CLIP model (2 points)
#
# Implement `CLIPModel(temperature, image_embedding=2048, text_embedding=768)`. In `__init__`, create
# `self.image_encoder = ImageEncoder()`, `self.text_encoder = TextEncoder()`,
# `self.image_projection` and `self.text_projection` (projection heads from each encoder's embedding
# size) and keep the temperature in `self.temperature`.
#
# `forward(batch)` receives a dictionary with `"image"`, `"input_ids"` and `"attention_mask"` and
# returns the symmetric InfoNCE loss: with I and T the projected image and text embeddings of the N
# pairs in the batch, the logits are `I @ T.T / temperature`, the i-th image belongs with the i-th
# caption, and the loss is the mean of the cross-entropy over images (rows) and over captions
# (columns). Do not use Python loops over the pairs of the batch: compute the logits of all pairs at
# once.

# %%
def symmetric_ce(logits):
    # logits[i, j] = similarity of image i and caption j; the matching caption is on the diagonal
    n = logits.size(0)
    targets = torch.arange(n, device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2

# %%
class CLIPModel(nn.Module):
    def __init__(self, temperature=0.07, image_embedding=2048, text_embedding=768):
        super().__init__()
        self.image_encoder = ImageEncoder()
        self.text_encoder = TextEncoder()
        self.image_projection = ProjectionHead(embedding_dim=image_embedding)
        self.text_projection = ProjectionHead(embedding_dim=text_embedding)
        self.temperature = temperature

    def forward(self, batch):
        I = self.image_projection(self.image_encoder(batch["image"]))
        T = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
        return symmetric_ce(I @ T.T / self.temperature)

# %%
def train_clip(model, batches, epochs):
    """AdamW with a learning rate per group: the heads learn faster than the pretrained image encoder."""
    heads = list(model.image_projection.parameters()) + list(model.text_projection.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": model.image_encoder.parameters(), "lr": CLIP_CONFIG["image_encoder_lr"]},
            {"params": heads, "lr": CLIP_CONFIG["head_lr"], "weight_decay": CLIP_CONFIG["weight_decay"]},
        ],
        weight_decay=0.0,
    )
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="CLIP"):
        epoch_loss = 0.0
        for batch in batches:
            loss = model(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(batches))
    return model, loss_traj


@torch.no_grad()
def embed_images(model, images, batch_size=128):
    """Projected, normalised embeddings of uint8 images (N, 3, H, W)."""
    model.eval()
    embeddings = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(DEVICE).float().div_(255)
        embeddings.append(model.image_projection(model.image_encoder(ImageNetNormalize()(batch))))
    model.train()
    return torch.cat(embeddings)

# %%
caption_rows = read_captions(SETUP.flickr8k_root)
train_pairs, val_pairs = train_val_split(one_caption_per_image(caption_rows), val_fraction=0.2, seed=42)
train_filenames, train_captions = zip(*train_pairs)
val_filenames, val_captions = zip(*val_pairs)
clip_train_images = load_images(SETUP.flickr8k_root, train_filenames, size=CLIP_CONFIG["image_size"])
clip_val_images = load_images(SETUP.flickr8k_root, val_filenames, size=CLIP_CONFIG["image_size"])
clip_batches = ClipBatches(
    clip_train_images, list(train_captions), batch_size=CLIP_CONFIG["batch_size"], shuffle=True, seed=SETUP.seed
)
print(len(train_pairs), "training pairs,", len(val_pairs), "validation pairs")

# %%
clip_model = CLIPModel(
    temperature=CLIP_CONFIG["temperature"],
    image_embedding=SETUP.image_embedding,
    text_embedding=SETUP.text_embedding,
).to(DEVICE)
clip_model, clip_loss_traj = train_clip(clip_model, clip_batches, epochs=SETUP.clip_epochs)
print("CLIP loss per epoch", [round(loss, 3) for loss in clip_loss_traj])

# %%
# Linear probe of the CLIP image encoder on STL-10, with the train_classifier you wrote in 7.1.4.
probe_encoder = nn.Sequential(ImageNetNormalize(), clip_model.image_encoder).eval()
clip_cls = nn.Linear(SETUP.image_embedding, 10).to(DEVICE)
clip_cls, clip_probe_loss_traj = train_classifier(
    probe_encoder, clip_cls, train_loader, epochs=SETUP.probe_epochs, supervised=False
)
clip_accuracy = test(probe_encoder, clip_cls, test_loader)
print(f"CLIP linear probe accuracy: {clip_accuracy:.3f}")

# %% [markdown]
# ### 7.2.3 Report (1 point)
#
# Write the linear-probe test accuracy of the CLIP image encoder in the form `CLIP accuracy: 0.802
#
# Much better than the autoencoder, the ResNet was pretrained on ImageNet. 0.80`.
# How does it compare with the autoencoder's features, and why?
#
# CLIP accuracy: 0.802
#
# Much better than the autoencoder, the ResNet was pretrained on ImageNet.

# %% [markdown]
# ### 7.2.4 Text-to-image retrieval (1 point)
#
# Implement `retrieve_images(model, image_embeddings, query, image_filenames, k=9)`: embed the text
# query with the model's text encoder and text projection, score every image by the dot product of
# its embedding with the query's, and return the `k` best filenames, best first, as a sequence of
# strings (a list, tuple, NumPy array or pandas Series). Do not use Python loops over the images:
# score and rank them all with tensor operations. A loop or comprehension over a fixed number of
# things (the tokenizer's outputs, the `k` results) is fine.

# %%
@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    encoded = TOKENIZER([query], padding=True, truncation=True, max_length=64)
    encoded = {key: torch.tensor(v) for key, v in encoded.items()}
    q = model.text_projection(
        model.text_encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    )
    dot = (image_embeddings @ q.T).squeeze(1)
    idx = torch.argsort(dot, descending=True)[:k]
    return [image_filenames[j] for j in idx.tolist()]

# %%
val_embeddings = embed_images(clip_model, clip_val_images)
for query in SETUP.example_queries:
    matches = retrieve_images(clip_model, val_embeddings, query, list(val_filenames), k=9)
    print(query, "->", matches[:3])
    positions = [val_filenames.index(name) for name in matches]
    show_images(clip_val_images[positions].float() / 255, matches, columns=9)

# %% [markdown]
# ## Check your work
#
# The next cell runs the public checks of this problem set on this notebook as it is now (in Colab, unsaved edits
# included): every check with its points and, under each failed one, what was expected, what your code did and the
# likely bug. The first run in a runtime installs the checks (a minute or two); later runs take seconds. The
# results are **advisory**: the public checks cover 5.1 of the 10 points, and the hidden tests are graded after the
# deadline.

# %%
PS7_CHECKS_URL = "https://COURSE-SITE/ps7_checks-0.1.0-py3-none-any.whl"  # the course's link to the checks


def run_the_public_checks(url):
    """Install the course's checks (once per runtime) and run them on this notebook. Its imports stay inside, so
    that the names a student's own cells use (`sys`, `subprocess`) keep meaning what those cells say."""
    if "PS7_PROFILE" in os.environ:
        print("PS7_PROFILE is set: the course's own tools are running this notebook, and they check it themselves")
        return
    if "COURSE-SITE" in url:
        print("The link to the checks has not been filled in: install them from the course page, then run")
        print("    from autograder.notebook import check_this_notebook; check_this_notebook()")
        return
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", url], check=True)
    from autograder.notebook import check_this_notebook

    check_this_notebook()


run_the_public_checks(PS7_CHECKS_URL)
