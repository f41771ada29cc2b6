"""Read and write the STL-10 binary format directly (no torchvision, no download), memory-mapped so that
a few images of the 2.7 GB unlabeled file cost a few reads. Self-contained: inlined into the notebook."""

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
