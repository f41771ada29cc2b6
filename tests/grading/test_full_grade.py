"""The whole product on its two fixed points: the reference scores 10/10 and the untouched template 0/10,
with the same list of tests, on the default (synthetic) profile with every test, training included."""

from __future__ import annotations

import json

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading import grade
from autograder.grading.grade import TOTAL_POINTS
from autograder.profiles.profile import load_profile
from tests.corpus.harness import component_points, explain, scores_by_component
from tests.results.test_html import Outline

# `make test` gives each test process whole files, so the module-scoped grades are made once.
# A full grade trains three models: minutes, more on a busy machine (the fixture counts toward the first test).
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def documents(synthetic_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        for name, notebook in (("reference", REFERENCE_NOTEBOOK), ("template", TEMPLATE_NOTEBOOK)):
            grade(REPO_ROOT / notebook, folder / f"{name}.json", suite="all", html=folder / f"{name}.html")
    return {
        name: {**json.loads((folder / f"{name}.json").read_text()), "html": (folder / f"{name}.html").read_text()}
        for name in ("reference", "template")
    }


def test_the_reference_scores_full_marks(documents):
    reference = documents["reference"]
    assert reference["score"] == TOTAL_POINTS, explain(reference)
    maxima = {component: points for component, (_, points) in scores_by_component(reference).items()}
    assert maxima == component_points()


def test_the_template_scores_zero_with_the_same_tests(documents):
    template, reference = documents["template"], documents["reference"]
    assert template["score"] == 0
    assert [(t["number"], t["name"], t["max_score"]) for t in template["tests"]] == [
        (t["number"], t["name"], t["max_score"]) for t in reference["tests"]
    ]
    assert all(test["output"] for test in template["tests"])  # every failure says why


def test_the_report_shows_what_the_reference_learned(documents):
    """The HTML report of a complete grade: reconstructions and, for each of the profile's example queries, the
    validation images the trained CLIP retrieves first, then the loss curves drawn as PNGs, then the table."""
    page = documents["reference"]["html"]
    queries = load_profile("synthetic").example_queries
    assert "test images (top) and their reconstructions" in page
    for curve in ("Method II classifier loss per epoch", "CLIP training loss per epoch"):
        assert curve in page
    for query in queries:
        assert f"your trained CLIP retrieves first for “{query}”" in page
    outline = Outline(page)
    kinds = outline.kinds()
    grids, curves = outline.images("img.grid"), outline.images("img.curve")
    assert len(grids) == 1 + len(queries) and len(curves) >= 4, outline.items
    assert max(i for i, kind in enumerate(kinds) if kind == "img.grid") < kinds.index("img.curve"), kinds
    assert max(i for i, kind in enumerate(kinds) if kind == "img.curve") < kinds.index("table"), kinds
    headings = [text for kind, text in outline.items if kind == "h3"]
    assert headings[0].startswith("Reconstructions") and headings[1:] == [f"Retrieval: “{query}”" for query in queries]
    assert all(curve.size == (480, 300) for curve in curves)
    assert "Synthetic profile: the images are generated shapes" in page


def test_the_template_report_says_why_it_has_no_figures(documents):
    page = documents["template"]["html"]
    assert Outline(page).kinds()[-1] == "table" and "img.grid" not in Outline(page).kinds()
    assert "No figures: they come from the training tests" in page
