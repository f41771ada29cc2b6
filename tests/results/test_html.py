"""The HTML report: the test table and the figures, in one self-contained page."""

from __future__ import annotations

import base64
import io
import re

import pytest
import torch
from PIL import Image

from autograder.results.figures import Curve, Figures, to_png
from autograder.results.gradescope import Results, TestResult
from autograder.results.html import render_html, write_html


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


def test_curve_points_are_scaled_into_the_box_and_skip_nan():
    points = Curve("loss", (3.0, float("nan"), 1.0)).polyline(width=100, height=50, pad=0)
    assert points == "0.0,0.0 100.0,50.0"
    assert Curve("flat", (2.0, 2.0)).polyline(width=100, height=50, pad=0) == "0.0,50.0 100.0,50.0"


def test_the_page_holds_the_table_the_figures_and_escapes_student_text(tmp_path):
    figures = Figures()
    figures.add_curve("autoencoder loss", [0.09, 0.05, 0.03])
    figures.add_images("reconstructions", torch.rand(4, 3, 8, 8), columns=4, captions=["a <b>", "b"])
    page = render_html(_results(), figures, title="ps7.ipynb", profile="synthetic")
    assert "0.5 / 1.5" in page and "expected 3.47; observed 6.9" in page
    assert "CLIPModel: &lt;loss&gt;" in page and "a &lt;b&gt;" in page  # nothing from a submission is markup
    assert "autoencoder loss: 0.09 → 0.03" in page
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
