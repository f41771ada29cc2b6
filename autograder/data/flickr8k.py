"""Read the Flickr8k layout (`Images/*.jpg` + `captions.txt`) the way the problem set does: one caption
per image, a seeded 80/20 split, images resized to a square. Self-contained: inlined into the notebook."""

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
