"""What a grading run shows a TA besides scores: image grids and training curves, for the HTML report.

Tests add figures through the `figures` fixture (`autograder.grading.plugin`) from observations they
already have (reconstructions, loss trajectories, retrieved images); nothing is trained for a figure.
Images are stored as PNG bytes made with Pillow, curves as plain lists, so the report is one
self-contained HTML file.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field

import torch
from PIL import Image

MAX_IMAGES = 64
MAX_POINTS = 10_000


@dataclass(frozen=True)
class ImageGrid:
    title: str
    png: bytes
    captions: tuple[str, ...] = ()

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Curve:
    title: str
    values: tuple[float, ...]

    def polyline(self, width: int = 320, height: int = 120, pad: int = 6) -> str:
        """SVG polyline points, y flipped so larger values are higher; non-finite values are skipped."""
        finite = [(i, v) for i, v in enumerate(self.values) if math.isfinite(v)]
        if not finite:
            return ""
        low, high = min(v for _, v in finite), max(v for _, v in finite)
        span_x = max(len(self.values) - 1, 1)
        span_y = (high - low) or 1.0
        return " ".join(
            f"{pad + (width - 2 * pad) * i / span_x:.1f},{height - pad - (height - 2 * pad) * (v - low) / span_y:.1f}"
            for i, v in finite
        )


def to_png(images: torch.Tensor, columns: int = 8) -> bytes:
    """A grid PNG of images (N, 3, H, W): uint8, or floats in [0, 1]."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    images = images[:MAX_IMAGES].detach().cpu()
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    count, channels, height, width = images.shape
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    canvas = torch.full((channels, rows * (height + 2), columns * (width + 2)), 255, dtype=torch.uint8)
    for index, image in enumerate(images):
        top, left = (index // columns) * (height + 2), (index % columns) * (width + 2)
        canvas[:, top : top + height, left : left + width] = image
    array = canvas.permute(1, 2, 0).numpy()
    mode = "RGB" if channels == 3 else "L"
    buffer = io.BytesIO()
    Image.fromarray(array if channels == 3 else array[:, :, 0], mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Figures:
    """The figures of one grading run, in the order the tests added them."""

    grids: list[ImageGrid] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    def add_images(self, title: str, images: torch.Tensor, columns: int = 8, captions: list[str] | None = None) -> None:
        self.grids.append(ImageGrid(title, to_png(images, columns), tuple(captions or ())))

    def add_curve(self, title: str, values: list[float]) -> None:
        self.curves.append(Curve(title, tuple(float(v) for v in values[:MAX_POINTS])))
