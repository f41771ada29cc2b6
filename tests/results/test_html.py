"""The HTML report: the test table and the figures, in one self-contained page."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy
import pytest
import torch
from markupsafe import escape
from PIL import Image

from autograder.results.figures import Curve, Figures, to_png
from autograder.results.gradescope import Results, TestResult
from autograder.results.html import PROFILE_NOTES, render_html, write_html


class Outline(HTMLParser):
    """The page's headings, images and tables in document order: what a reader meets, from the top."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.items: list[tuple[str, str]] = []
        self._heading: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.items.append((f"img.{attributes.get('class')}", attributes.get("src") or ""))
        elif tag == "table":
            self.items.append(("table", ""))
        elif tag in ("h2", "h3"):
            self._heading = ""

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading is not None:
            self.items.append((tag, self._heading.strip()))
            self._heading = None

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.items]

    def images(self, kind: str) -> list[Image.Image]:
        prefix = "data:image/png;base64,"
        return [
            Image.open(io.BytesIO(base64.b64decode(src.removeprefix(prefix))))
            for found, src in self.items
            if found == kind and src.startswith(prefix)
        ]


def _results() -> Results:
    return Results(
        tests=[
            TestResult("7.1.1 Encoder: shapes", "7.1.1.1", 0.5, 0.5, "passed"),
            TestResult("7.2.2 CLIPModel: <loss>", "7.2.2.1", 0.0, 1.0, "failed", output="expected 3.47; observed 6.9"),
        ],
        output="2 definitions could not be loaded",
    )


def test_png_grid_has_the_images_where_expected():
    images = torch.zeros(3, 3, 4, 5, dtype=torch.uint8)
    images[1] = 200
    png = Image.open(io.BytesIO(to_png(images, columns=2)))
    assert png.size == (2 * 7, 2 * 6) and png.mode == "RGB"
    assert png.getpixel((0, 0)) == (0, 0, 0) and png.getpixel((7, 0)) == (200, 200, 200)
    assert png.getpixel((0, 6)) == (0, 0, 0) and png.getpixel((13, 11)) == (255, 255, 255)  # empty slot
    floats = Image.open(io.BytesIO(to_png(torch.ones(1, 3, 2, 2) * 0.5)))
    assert floats.getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        to_png(torch.zeros(3, 4, 5))


def test_a_loss_curve_is_drawn_from_zero_on_labelled_axes_of_epochs():
    """A loss from 2.304 to 2.295 must look flat (the old sparkline scaled it min-to-max, as steep as 2.30 to 0.54),
    with its axes named and epochs as whole numbers from 1."""
    flat = Curve("classifier", (2.304, 2.300, 2.295), y_label="cross-entropy (nats)", baseline=(2.3026, "chance"))
    axes = flat.figure().axes[0]
    low, high = axes.get_ylim()
    assert low == 0 and 2.304 < high < 2.304 * 1.2
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("epoch", "cross-entropy (nats)")
    assert list(axes.get_xticks()) == [1, 2, 3]
    line, chance = axes.get_lines()
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [2.304, 2.300, 2.295]
    assert list(chance.get_ydata()) == [2.3026, 2.3026]
    png = Image.open(io.BytesIO(flat.png()))
    assert png.format == "PNG" and png.size[0] >= 400


def test_a_one_epoch_run_is_a_point_and_non_finite_values_are_left_out():
    single = Curve("clip", (2.9,)).figure().axes[0]
    [point] = single.get_lines()
    assert point.get_marker() == "o" and list(point.get_xdata()) == [1] and list(single.get_xticks()) == [1]
    assert single.get_xlim() == (0.5, 1.5) and single.get_ylim()[0] == 0
    broken = Curve("loss", (3.0, float("nan"), 1.0)).figure().axes[0]
    assert list(broken.get_lines()[0].get_xdata()) == [1, 3]
    assert "1 non-finite value not drawn" in [text.get_text() for text in broken.get_legend().get_texts()]
    assert Curve("rising", (-1.0, 2.0)).y_limits()[0] == -1.0


def test_the_page_holds_the_table_the_figures_and_escapes_student_text(tmp_path):
    figures = Figures()
    figures.add_curve("autoencoder loss", [0.09, 0.05, 0.03])
    figures.add_images("reconstructions", torch.rand(4, 3, 8, 8), columns=4, captions=["a <b>", "b"])
    page = render_html(_results(), figures, title="ps7.ipynb", profile="synthetic")
    assert "0.5 / 1.5" in page and "expected 3.47; observed 6.9" in page
    assert "CLIPModel: &lt;loss&gt;" in page and "a &lt;b&gt;" in page  # nothing from a submission is markup
    assert "autoencoder loss: 0.09 → 0.05 → 0.03 (3 epochs)" in page
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(encoded))).size == (4 * 10, 10)
    path = write_html(_results(), figures, tmp_path / "report.html", title="x", profile="synthetic")
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert not list(tmp_path.glob("*.tmp"))


def test_the_page_is_written_atomically_and_never_through_a_planted_symbolic_link(tmp_path):
    """`--html` as root once wrote through a predictable `PATH.tmp` link to a root-owned file. Links planted at
    `PATH.tmp` and at PATH itself must both leave their targets untouched."""
    protected = tmp_path / "protected.txt"
    protected.write_text("root-owned content")
    report = tmp_path / "report.html"
    (tmp_path / "report.html.tmp").symlink_to(protected)
    report.symlink_to(protected)
    written = write_html(_results(), Figures(), report, title="ps7.ipynb", profile="synthetic")
    assert written == report and not report.is_symlink()
    assert "<html" in report.read_text(encoding="utf-8").lower()
    assert protected.read_text() == "root-owned content"
    assert (report.stat().st_mode & 0o777) == 0o644
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers == ["protected.txt", "report.html", "report.html.tmp"], "no temporary file is left behind"


def test_the_staff_notes_stay_in_the_staff_page():
    """Warnings for the staff (an uncalibrated profile) left the students' output; the page still shows them."""
    note = "Profile 'stl10': the accuracy thresholds were not calibrated on its grading budgets"
    page = render_html(_results(), Figures(), title="x", profile="stl10", staff_notes=[note])
    assert note.replace("'", "&#39;") in page and "2 definitions could not be loaded" in page
    assert "not calibrated" not in render_html(_results(), Figures(), title="x", profile="stl10")


def test_the_pictures_come_first_then_the_curves_the_summary_and_the_table():
    figures = Figures()
    figures.add_curve("loss", [0.09, 0.05], y_label="mean squared error per pixel")
    figures.add_images("reconstructions", torch.rand(16, 3, 64, 64), columns=8, heading="Reconstructions")
    figures.add_images("retrieved", torch.rand(8, 3, 64, 64), columns=8, heading="Retrieval: “a <red> circle”")
    page = render_html(_results(), figures, title="ps7.ipynb", profile="synthetic")
    outline = Outline(page)
    assert outline.kinds() == [
        "h2", "h3", "img.grid", "h3", "img.grid", "h2", "img.curve", "h2", "h2", "table"
    ], outline.items
    assert [text for kind, text in outline.items if kind in ("h2", "h3")] == [
        "Images", "Reconstructions", "Retrieval: “a <red> circle”", "Training curves", "Summary", "Tests"
    ]
    assert "Retrieval: “a &lt;red&gt; circle”" in page
    # The test that lost points is named at the top, linked to its row of the table.
    assert '<li><a href="#test-2">7.2.2.1</a> 7.2.2 CLIPModel: &lt;loss&gt;: 0 / 1</li>' in page
    assert page.index("Lost points") < page.index("<h2>Images") and 'id="test-2">' in page.split("<table>")[1]
    # 64-pixel images are shown at twice their size (8 columns of 66 pixels fill the page), without smoothing.
    assert re.search(r'<img class="grid" src="[^"]+" width="1056"', page)
    assert "image-rendering: pixelated" in page
    [curve] = outline.images("img.curve")
    assert curve.size == (480, 300)
    note = str(escape(PROFILE_NOTES["synthetic"]))
    assert note in page and note not in render_html(_results(), figures, title="x", profile="stl10")


def test_the_summary_is_not_a_warning_and_a_page_without_figures_says_why():
    page = render_html(_results(), Figures(), title="ps7.ipynb", profile="stl10")
    assert 'class="staff"' not in page and '<div class="summary"><pre>2 definitions could not be loaded' in page
    assert "No figures: they come from the training tests" in page
    assert Outline(page).kinds() == ["h2", "h2", "table"]


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Chromium is not installed (Debian: apt-get install chromium), so the page is not rendered in a browser",
)
def test_a_browser_shows_the_enlarged_pictures_at_the_top_of_the_page(tmp_path):
    """Headless Chromium renders the page: the reconstructions (pure red test images here) are on the first screen,
    at twice their size, and the curves' PNGs load."""
    figures = Figures()
    figures.add_images("reconstructions", torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(16, 3, 64, 64),
                       columns=8, heading="Reconstructions")
    figures.add_curve("loss", [0.09, 0.05, 0.03])
    page = write_html(_results(), figures, tmp_path / "report.html", title="ps7.ipynb", profile="synthetic")
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--window-size=1280,900", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = numpy.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (pixels[:, :, 0] > 240) & (pixels[:, :, 1] < 15) & (pixels[:, :, 2] < 15)
    rows, columns = numpy.nonzero(red)
    assert rows.size, "no reconstruction is visible on the first screen"
    # 8 columns and 2 rows of 64-pixel images with 2 white pixels after each, all drawn twice as large.
    assert (columns.max() - columns.min() + 1, rows.max() - rows.min() + 1) == (8 * 66 * 2 - 4, 2 * 66 * 2 - 4)
    assert red[rows.min(), columns.min() : columns.min() + 128].all() and not red[rows.min(), columns.min() + 128]
