"""What a grading run shows a TA besides scores: image grids and training curves, for the HTML report.

Tests add figures through the `figures` fixture (`autograder.grading.plugin`) from observations they
already have (reconstructions, loss trajectories, retrieved images); nothing is trained for a figure.
Images are stored as PNG bytes made with Pillow, curves as plain lists drawn by matplotlib into PNGs, so the
report is one self-contained HTML file.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_IMAGES = 64
MAX_POINTS = 10_000
GRID_GAP = 2  # white pixels between the images of a grid
REPORT_WIDTH = 1060  # CSS pixels a grid may fill; small images are enlarged (whole multiples) up to it
MAX_ENLARGEMENT = 4
CURVE_SIZE_INCHES = (4.8, 3.0)
CURVE_DPI = 100
MAX_EPOCH_TICKS = 10


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class ImageGrid:
    """A grid of images. `heading` names what it shows (a retrieval query, "reconstructions"); `columns` and the
    size of one image let the page enlarge it without blurring (whole multiples, pixelated)."""

    title: str
    png: bytes
    captions: tuple[str, ...] = ()
    heading: str = ""
    width: int = 0  # of the PNG, in pixels

    @property
    def data_uri(self) -> str:
        return data_uri(self.png)

    @property
    def display_width(self) -> int:
        """The width to show it at: the largest whole multiple of its size (at most MAX_ENLARGEMENT) that fits."""
        if self.width <= 0:
            return 0
        return self.width * max(1, min(MAX_ENLARGEMENT, REPORT_WIDTH // self.width))


@dataclass(frozen=True)
class Curve:
    """A quantity per epoch. The y axis starts at zero for values that cannot be negative (a loss), so that a
    loss going from 2.304 to 2.295 looks as flat as it is; `baseline` (value, label) draws a reference level,
    such as the loss of guessing."""

    title: str
    values: tuple[float, ...]
    y_label: str = "loss"
    x_label: str = "epoch"
    baseline: tuple[float, str] | None = None

    def y_limits(self) -> tuple[float, float]:
        """From zero (or the lowest value, when one is negative) to a little above the highest value or baseline."""
        finite = [v for v in self.values if math.isfinite(v)]
        if self.baseline is not None:
            finite.append(self.baseline[0])
        if not finite:
            return (0.0, 1.0)
        low, high = min(0.0, min(finite)), max(finite)
        top = high + 0.08 * ((high - low) or abs(high) or 1.0)
        return (low, top)

    def summary(self, shown: int = 6) -> str:
        """The values in words: all of them when few ("0.09 → 0.05 → 0.03"), else the first and the last."""
        text = [f"{value:.4g}" for value in self.values]
        if len(text) > shown:
            text = [text[0], "…", text[-1]]
        epochs = len(self.values)
        return " → ".join(text) + f" ({epochs} epoch{'s' if epochs != 1 else ''})"

    def figure(self) -> Figure:
        """The curve on labelled axes: epochs 1..n on x (whole numbers), markers on every point so that a run of
        one epoch shows as a point, non-finite values left out (and said so in the legend). matplotlib is imported
        here, when a page is drawn, so that grading without `--html` (and the students' `check`) does not load it;
        its object API and Agg canvas leave pyplot's global state and backend alone."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        figure = Figure(figsize=CURVE_SIZE_INCHES, dpi=CURVE_DPI, layout="constrained")
        axes = figure.add_subplot()
        epochs = [index + 1 for index, value in enumerate(self.values) if math.isfinite(value)]
        values = [value for value in self.values if math.isfinite(value)]
        axes.plot(epochs, values, marker="o", markersize=5 if len(values) > 1 else 8, color="#1f5fbf",
                  label="per epoch")
        skipped = len(self.values) - len(values)
        if self.baseline is not None:
            level, label = self.baseline
            axes.axhline(level, color="#888888", linestyle="--", linewidth=1, label=label)
        if skipped:
            axes.plot([], [], " ", label=f"{skipped} non-finite value{'s' if skipped > 1 else ''} not drawn")
        epochs_run = max(len(self.values), 1)
        axes.set_xlim(0.5, epochs_run + 0.5)
        if epochs_run <= MAX_EPOCH_TICKS:
            axes.set_xticks(range(1, epochs_run + 1))
        else:
            axes.xaxis.set_major_locator(MaxNLocator(nbins=MAX_EPOCH_TICKS, integer=True))
        axes.set_ylim(*self.y_limits())
        axes.set_xlabel(self.x_label)
        axes.set_ylabel(self.y_label)
        axes.grid(True, color="#e5e5e5")
        if self.baseline is not None or skipped:
            axes.legend(loc="lower left", fontsize="small")
        return figure

    def png(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        figure = self.figure()
        buffer = io.BytesIO()
        FigureCanvasAgg(figure).print_png(buffer)
        return buffer.getvalue()

    @property
    def data_uri(self) -> str:
        return data_uri(self.png())


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
    canvas = torch.full((channels, rows * (height + GRID_GAP), columns * (width + GRID_GAP)), 255, dtype=torch.uint8)
    for index, image in enumerate(images):
        top, left = (index // columns) * (height + GRID_GAP), (index % columns) * (width + GRID_GAP)
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

    def add_images(
        self,
        title: str,
        images: torch.Tensor,
        columns: int = 8,
        captions: list[str] | None = None,
        heading: str = "",
    ) -> None:
        png = to_png(images, columns)
        width = Image.open(io.BytesIO(png)).width
        self.grids.append(ImageGrid(title, png, tuple(captions or ()), heading, width))

    def add_curve(
        self,
        title: str,
        values: list[float],
        *,
        y_label: str = "loss",
        baseline: tuple[float, str] | None = None,
    ) -> None:
        self.curves.append(Curve(title, tuple(float(v) for v in values[:MAX_POINTS]), y_label, "epoch", baseline))
