"""`grade` end to end on the real notebooks: pytest in this process, student code in the sandboxed worker."""

from __future__ import annotations

import json

import nbformat
import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading import find_submission, grade
from autograder.grading.grade import suite_arguments
from autograder.grading.plugin import GradingPlugin
from autograder.ingest import ingest
from autograder.results.gradescope import Results, from_markdown
from autograder.results.plugin import ResultsPlugin
from tests.results.test_html import Outline
from tests.results.test_schema import load_valid


def _entries(path):
    return [(test["number"], test["name"], test["max_score"], test["visibility"]) for test in load_valid(path)["tests"]]


def test_reference_scores_full_and_template_zero_with_the_same_tests(synthetic, tmp_path):
    """Without the training tests: the complete grade, training included, is tests/grading/test_full_grade.py."""
    reference_file, template_file = tmp_path / "reference.json", tmp_path / "template.json"
    reference = grade(REPO_ROOT / REFERENCE_NOTEBOOK, reference_file, suite="all", training=False)
    template = grade(REPO_ROOT / TEMPLATE_NOTEBOOK, template_file, suite="all", training=False)
    assert reference.total_score == reference.max_score > 0, [t.output for t in reference.tests]
    assert template.total_score == 0
    assert _entries(reference_file) == _entries(template_file)
    numbers = [entry[0] for entry in _entries(reference_file)]
    assert "7.1.1.1" in numbers and "7.1.3.1" in numbers  # public and hidden
    encoder_points = sum(t.max_score for t in reference.tests if t.number.startswith("7.1.1."))
    assert encoder_points == pytest.approx(1.0)
    failures = {test.number: test.output for test in template.tests}
    assert "not implemented yet" in failures["7.1.1.1"] and "<cell" in failures["7.1.1.1"]


def test_public_suite_and_only_select_tests(synthetic, tmp_path):
    results = grade(REPO_ROOT / REFERENCE_NOTEBOOK, tmp_path / "r.json", suite="public", only="7.1.1.3")
    assert [test.number for test in results.tests] == ["7.1.1.3"]
    assert results.tests[0].visibility == "visible" and results.total_score == results.tests[0].max_score


def test_wrong_encoder_gets_expected_versus_observed_feedback(synthetic, tmp_path):
    path = tmp_path / "wrong.py"
    path.write_text(
        "import torch.nn as nn\n\n"
        "class Encoder(nn.Module):\n"
        "    def __init__(self, in_channels=3):\n"
        "        super().__init__()\n"
        "        self.conv1 = nn.Conv2d(in_channels, 12, 3, 2, 1)\n"
        "        self.conv2 = nn.Conv2d(12, 24, 4, 2, 1)\n\n"
        "    def forward(self, x):\n"
        "        return self.conv2(self.conv1(x))\n"
    )
    results = grade(path, tmp_path / "r.json", suite="public")
    outputs = {test.number: test.output for test in results.tests}
    assert results.total_score == 0
    assert "expected 4 convolutions with channels 3 → 12 → 24 → 48 → 24; observed 2" in outputs["7.1.1.1"]
    assert "expected Encoder()(x) for x of shape (2, 3, 64, 64) to have shape (2, 24, 4, 4)" in outputs["7.1.1.2"]
    assert "observed (2, 24, 16, 16)" in outputs["7.1.1.2"]
    count = (3 * 12 * 3 * 3 + 12) + (12 * 24 * 4 * 4 + 24)
    assert f"expected 42,156 parameters in Encoder(); observed {count:,}" in outputs["7.1.1.3"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (bytes(range(256)) * 40, "ps7.ipynb"), (b'{"cells": 3}', "ps7.ipynb")],
    ids=["empty", "binary", "json-not-notebook"],
)
def test_unreadable_submissions_list_every_test_at_zero(tmp_path, content, message):
    path = tmp_path / "ps7.ipynb"
    path.write_bytes(content)
    results = grade(path, tmp_path / "r.json", suite="all")
    document = load_valid(tmp_path / "r.json")
    assert document["score"] == 0 and len(document["tests"]) >= 4
    assert all(message in test["output"] and "could not be read" in test["output"] for test in document["tests"])
    assert message in results.output


def test_find_submission_prefers_notebooks_and_skips_checkpoints(tmp_path):
    (tmp_path / "a" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "a" / ".ipynb_checkpoints" / "ps7-checkpoint.ipynb").write_text("{}")
    (tmp_path / "helper.py").write_text("x = 1")
    assert find_submission(tmp_path) == tmp_path / "helper.py"
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "a" / "ps7.ipynb")
    assert find_submission(tmp_path) == tmp_path / "a" / "ps7.ipynb"
    assert find_submission(tmp_path / "a" / ".ipynb_checkpoints") is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_submission(empty) is None
    results = grade(empty, tmp_path / "r.json", suite="public")
    assert results.total_score == 0 and "no notebook (.ipynb) or Python file (.py) was found" in results.output


def test_plugin_refuses_unknown_suites():
    with pytest.raises(ValueError, match="suite must be 'public' or 'all'"):
        GradingPlugin(None, "x", suite="secret")
    with pytest.raises(ValueError, match="suite must be one of"):
        grade("x.ipynb", "r.json", suite="secret")


def test_results_file_is_json_with_hidden_stdout(synthetic, tmp_path):
    path = tmp_path / "s.py"
    path.write_text("def unrelated():\n    return 1\n")
    grade(path, tmp_path / "r.json", suite="public", only="7.1.1.3")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["stdout_visibility"] == "hidden"
    assert from_markdown(document["tests"][0]["output"]).startswith("`Encoder` is not defined in your notebook")


def test_the_worker_starts_at_collection_only_when_a_selected_test_needs_it(synthetic, tmp_path):
    """The plugin starts the worker's load before the first test (so that it overlaps building the reference),
    but an unreadable submission, or a selection of static tests, costs no worker at all."""
    submission = ingest(REPO_ROOT / REFERENCE_NOTEBOOK)

    def run(plugin: GradingPlugin) -> Results:
        results = ResultsPlugin(tmp_path / "r.json")
        try:
            pytest.main(suite_arguments(), plugins=[results, plugin])
        finally:
            plugin.close()
        return results.results

    static = GradingPlugin(submission, suite="all", only="7.1.4.6")
    assert run(static).total_score == 0.15 and static.worker_instance is None
    unreadable = GradingPlugin(None, "not a notebook", suite="public", only="7.1.1.3")
    assert run(unreadable).total_score == 0 and unreadable.worker_instance is None

    class Recorded(GradingPlugin):
        """Records how far the worker had got when the first test began."""

        def pytest_runtest_setup(self, item):
            if not hasattr(self, "first_test"):
                worker = self.worker_instance
                self.first_test = (worker is not None and worker.starts, worker is not None and worker.alive)

    needed = Recorded(submission, suite="public", only="7.1.1.3")
    assert run(needed).total_score == 0.15
    assert needed.first_test == (1, True) and needed.worker_instance.starts == 1


def test_tracebacks_name_the_cell_as_the_notebook_shows_it(synthetic, tmp_path):
    """The template's Encoder raises NotImplementedError; its traceback names the cell by its place among all the
    notebook's cells (markdown included) and its `In [N]`, as Jupyter and Colab show them."""
    notebook = nbformat.read(REPO_ROOT / TEMPLATE_NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code, start=1):
        cell.execution_count = count
    path = tmp_path / "ran.ipynb"
    nbformat.write(notebook, path)
    position, encoder = next(
        (index, cell) for index, cell in enumerate(notebook.cells, start=1) if "class Encoder(" in cell.source
    )
    assert notebook.cells[position - 2].cell_type == "markdown" and position > code.index(encoder) + 1
    results = grade(path, tmp_path / "r.json", suite="public", only="7.1.1")
    output = next(test.output for test in results.tests if test.number == "7.1.1.1")
    assert f'File "<cell {position} (In [{encoder.execution_count}])>", line ' in output, output


def test_the_report_page_escapes_what_the_student_wrote(synthetic, tmp_path):
    """Markup in a student's error message and printed output reaches the page as text, never as elements."""
    path = tmp_path / "markup.py"
    path.write_text(
        "import torch.nn as nn\n\n"
        "class Encoder(nn.Module):\n"
        "    def __init__(self, in_channels=3):\n"
        "        print('<script>alert(1)</script>')\n"
        "        raise ValueError('<img src=x onerror=alert(2)>')\n"
    )
    page_path = tmp_path / "report.html"
    results = grade(path, tmp_path / "r.json", suite="public", only="7.1.1", html=page_path)
    assert results.total_score == 0
    page = page_path.read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<img src=x" not in page and "<script>" not in page
    assert Outline(page).kinds()[-1] == "table" and "No figures" in page
