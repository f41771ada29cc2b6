"""The report reader (`autograder.suites.reports`) on what students really write, and the two report suites
graded end to end on notebooks whose report cell is written in those forms."""

from __future__ import annotations

import nbformat
import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading import grade
from autograder.suites.reports import AmbiguousReport, report_lines, reported

STATEMENT = (
    "### 7.1.5 Report (1 point)\n\nWrite the test accuracy of each method on its own line, exactly in the form "
    "`method 1 accuracy: 0.30`\n(a fraction or a percentage). Which method works best, which worst, and why?"
)
CLIP_STATEMENT = "Write the linear-probe test accuracy of the CLIP image encoder in the form `CLIP accuracy: 0.80`."


def _values(cell: str, subjects=("method 1", "method 2", "method 3")) -> dict[str, float | None]:
    answers = {subject: reported([STATEMENT, CLIP_STATEMENT, cell], subject) for subject in subjects}
    return {subject: None if answer is None else answer.value for subject, answer in answers.items()}


@pytest.mark.parametrize(
    "cell",
    [
        "method 1 accuracy: 0.319\nmethod 2 accuracy: 0.435\nmethod 3 accuracy: 0.258",
        "Method I accuracy: 0.319\nMethod II accuracy: 0.435\nMethod III accuracy: 0.258",
        "method1 accuracy = 31.9%\nmethod2 accuracy = 43.5 %\nmethod3 accuracy = 25.8%",
        "**Method I:** 31.9%\n**Method II:** 43.5%\n**Method III:** 25.8%",
        "- Method I (autoencoder): 0.319\n- Method 2 (supervised) = 0.435\n- Method III: 25.8 %",
        "Method I accuracy: **0.319**\nMethod II accuracy: `0.435`\nMethod III accuracy: $25.8\\%$",
        "Method 1 (autoencoder) test accuracy: 0.319\nmethod 2 accuracy is 0.435\nMethod #3 accuracy: 0.258",
        "accuracy of method 1: 0.319\nTest accuracy for Method II: 43.5%\naccuracy of the method 3: 0.258",
        "| Method | Accuracy |\n|---|---|\n| I | 0.319 |\n| 2 | 0.435 |\n| Method III (random) | 0.258 |",
        "| Method | Train acc. | Test acc. (%) |\n|:--|--:|--:|\n| I | 40 | 31.9 |\n| II | 60 | 43.5 |\n"
        "| III | 30 | 25.8 |",
        "|  | Method I | Method II | Method III |\n|---|---|---|---|\n| accuracy | 0.319 | 0.435 | 0.258 |",
        "### Method I\naccuracy: 0.319\n\n### Method II\n\ntest accuracy = 43.5%\n### Method III\naccuracy: 0.258",
        "1. method 1 accuracy: 0.319\n2. method 2 accuracy: 0.435\n3. method 3 accuracy: 0.258",
        "> method 1 accuracy: 0.319\n\n> method 2 accuracy: 0.435\n\n> method 3 accuracy: 0.258\n\n"
        "Method II works best: it is trained with the labels.",
    ],
    ids=[
        "template-form",
        "roman",
        "no-space-equals-percent",
        "bold-label-percent",
        "list-qualifier-bare",
        "bold-code-latex-number",
        "qualifier-words-is-hash",
        "accuracy-of",
        "table",
        "table-test-column-percent-header",
        "transposed-table",
        "headings",
        "numbered-list",
        "quotes-and-prose",
    ],
)
def test_each_form_reads_all_three_methods(cell):
    assert _values(cell) == pytest.approx({"method 1": 0.319, "method 2": 0.435, "method 3": 0.258})


@pytest.mark.parametrize(
    "cell",
    [
        "CLIP accuracy: 0.80",
        "CLIP linear probe accuracy: 0.80",
        "**CLIP accuracy:** 80%",
        "CLIP (linear probe) accuracy = 80 %",
        "### CLIP\n\naccuracy: 0.80",
        "**CLIP**\n- Test accuracy: $0.80$",
        "| Model | Accuracy |\n|---|---|\n| Method I | 0.32 |\n| CLIP | 0.80 |",
        "CLIP: 0.8",
    ],
)
def test_each_form_reads_the_clip_accuracy(cell):
    assert reported([STATEMENT, CLIP_STATEMENT, cell], "CLIP").value == pytest.approx(0.80)


def test_the_problem_statement_alone_gives_no_answer():
    """The statement shows the forms mid-line; those must never be read as the student's answer."""
    for subject in ("method 1", "method 2", "method 3", "CLIP"):
        assert report_lines([STATEMENT, CLIP_STATEMENT], subject) == []


@pytest.mark.parametrize(
    "cell",
    [
        "Method I: the frozen autoencoder encoder, expected about 30%.",
        "I expect Method I accuracy: 0.30 or so",
        "| Epoch | Accuracy |\n|---|---|\n| 1 | 0.30 |",
        "### Method I\nThe loss went down to 0.30.",
        "### Method I\n### Discussion\naccuracy: 0.30",
    ],
    ids=["prose-after-label", "mid-line", "table-without-method-column", "heading-without-accuracy", "other-heading"],
)
def test_prose_and_unrelated_numbers_are_not_answers(cell):
    assert reported([cell], "method 1") is None or reported([cell], "method 1").value is None


def test_the_template_line_without_a_number_is_kept_as_the_missing_answer():
    answer = reported(["method 1 accuracy:\nmethod 2 accuracy:"], "method 1")
    assert answer is not None and answer.line == "method 1 accuracy:" and answer.value is None


def test_an_empty_template_line_and_a_table_do_not_conflict():
    cells = ["method 1 accuracy:", "| Method | Accuracy |\n|---|---|\n| I | 31.9% |"]
    assert reported(cells, "method 1").value == pytest.approx(0.319)


def test_the_same_number_twice_is_not_ambiguous():
    answer = reported(["Method I accuracy: 0.32", "| Method | Accuracy |\n|--|--|\n| I | 32% |"], "method 1")
    assert answer.value == pytest.approx(0.32) and answer.line == "Method I accuracy: 0.32"


def test_two_different_numbers_for_one_method_are_refused_naming_both_lines():
    with pytest.raises(AmbiguousReport) as raised:
        reported(["method 1 accuracy: 0.30", "Method I accuracy: 0.319"], "method 1")
    message = str(raised.value)
    assert "Method I has 2 different numbers" in message
    assert "`method 1 accuracy: 0.30`" in message and "`Method I accuracy: 0.319`" in message


def test_method_i_is_not_method_ii_and_a_number_above_one_is_kept_as_written():
    cells = ["Method II accuracy: 0.435\nMethod III accuracy: 25.8\nMethod 12 accuracy: 0.9"]
    assert reported(cells, "method 1") is None
    assert reported(cells, "method 3").value == 25.8


def _notebook_with_report(tmp_path, report: str, clip: str):
    notebook = nbformat.read(REPO_ROOT / REFERENCE_NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and "method 1 accuracy: 0.320" in cell.source:
            cell.source = cell.source.split("method 1 accuracy: 0.320")[0] + report
        if cell.cell_type == "markdown" and "CLIP accuracy: 0.802" in cell.source:
            cell.source = cell.source.replace("CLIP accuracy: 0.802", clip)
    path = tmp_path / "ps7.ipynb"
    nbformat.write(notebook, path)
    return path


def test_a_roman_numeral_report_scores_full_marks_in_both_report_suites(synthetic, tmp_path):
    """The report that got 0/1 in 7.1.5 before: `Method I accuracy: 0.319` and so on."""
    path = _notebook_with_report(
        tmp_path,
        "Method I accuracy: 0.319\nMethod II accuracy: 0.435\nMethod III accuracy: 0.258\n",
        "### CLIP\naccuracy: 80.2 %",
    )
    for component in ("7.1.5", "7.2.3"):
        results = grade(path, tmp_path / f"{component}.json", suite="all", only=component)
        assert len(results.tests) == 2 and results.total_score == results.max_score, [t.output for t in results.tests]


def test_an_ambiguous_report_fails_saying_which_lines_and_which_forms_count(synthetic, tmp_path):
    path = _notebook_with_report(
        tmp_path,
        "method 1 accuracy: 0.30\nMethod I accuracy: 0.319\nMethod II: 43.5%\n",
        "CLIP accuracy: 0.80",
    )
    results = grade(path, tmp_path / "r.json", suite="all", only="7.1.5")
    outputs = {test.number: test.output for test in results.tests}
    assert (
        "Method I has 2 different numbers: `method 1 accuracy: 0.30` (0.30); `Method I accuracy: 0.319`"
        in (outputs["7.1.5.1"])
    )
    assert "no answer for Method III found" in outputs["7.1.5.1"] and "Accepted forms:" in outputs["7.1.5.1"]
    assert results.tests[0].score == pytest.approx(0.5 / 3)
