"""What a student sees on Gradescope before the deadline, read from the results file of a real grade: the
visible tests and the top-level output, and nothing about the hidden tests (Gradescope's specification:
`after_due_date` tests are shown after the due date, and while tests are hidden the total score is not shown;
the grader's stdout is shown to instructors only)."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading import grade
from autograder.results.gradescope import from_markdown
from tests.results.test_schema import load_valid


def _before_the_deadline(document: dict) -> tuple[str, list[dict]]:
    """The top-level output and the tests a student sees before the due date, as plain text."""
    visible = [
        {**test, "output": from_markdown(test["output"])}
        for test in document["tests"]
        if test["visibility"] == "visible"
    ]
    return from_markdown(document["output"]), visible


def _leaks(document: dict) -> list[str]:
    output, visible = _before_the_deadline(document)
    hidden = [test for test in document["tests"] if test["visibility"] != "visible"]
    shown = "\n".join([output] + [f"{test['name']}\n{test['output']}" for test in visible])
    leaks = [
        f"hidden test {test['number']}" for test in hidden if re.search(rf"\b{re.escape(test['number'])}\b", shown)
    ]
    leaks += [f"hidden test name {test['name']!r}" for test in hidden if test["name"] in shown]
    everything = sum(test["max_score"] for test in document["tests"])
    earned = document["score"]
    public_max = sum(test["max_score"] for test in visible)
    if everything != public_max:
        leaks += [
            f"total {everything:g}" for pattern in (f"/ {everything:g}", f"of {everything:g}") if pattern in shown
        ]
    public_earned = sum(test["score"] for test in visible)
    if earned != public_earned and re.search(rf"(?<![\d.]){re.escape(f'{earned:g}')}(?![\d.])", output):
        leaks.append(f"score {earned:g} including hidden points")
    leaks += [
        f"{len(document['tests'])} tests" for pattern in (f"of {len(document['tests'])} tests",) if pattern in shown
    ]
    return leaks


def test_before_the_deadline_a_student_sees_nothing_of_the_hidden_tests(synthetic, tmp_path):
    """A partly right submission, so that hidden and visible scores differ (the reference's report numbers
    are swapped: 7.1.5.1 passes, the hidden order test 7.1.5.2 fails)."""
    notebook = nbformat.read(REPO_ROOT / REFERENCE_NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("method 1 accuracy: 0.320", "method 1 accuracy: 0.500")
    path = tmp_path / "ps7.ipynb"
    nbformat.write(notebook, path)
    results = grade(path, tmp_path / "results.json", suite="all", training=False)
    document = load_valid(tmp_path / "results.json")
    assert {test["visibility"] for test in document["tests"]} == {"visible", "after_due_date"}
    hidden_lost = [t for t in results.tests if t.visibility != "visible" and t.score < t.max_score]
    assert [t.number for t in hidden_lost] == ["7.1.5.2"]  # the submission differs where it should
    output, visible = _before_the_deadline(document)
    public = sum(test["max_score"] for test in visible)
    assert (
        output.splitlines()[0]
        == f"Public tests: {public:g} / {public:g} points ({len(visible)} of {len(visible)} tests passed)."
    )
    assert _leaks(document) == []
    assert document["stdout_visibility"] == "hidden"


def test_the_leak_check_sees_the_old_top_level_output(synthetic, tmp_path):
    """The check above can fail: the summary this grader wrote before counted the hidden tests."""
    results = grade(REPO_ROOT / REFERENCE_NOTEBOOK, tmp_path / "r.json", suite="all", only="7.1.5")
    document = load_valid(tmp_path / "r.json")
    document["output"] = (
        f"Score: {results.total_score:g} / {results.max_score:g} points (2 of {len(results.tests)} tests passed)."
    )
    assert _leaks(document)


def test_staff_warnings_go_to_stdout_not_to_the_students_output(synthetic, tmp_path):
    """An uncalibrated profile says so to the staff on the grader's stdout; the student's output is quiet."""
    profile = tmp_path / "uncalibrated.json"
    text = (REPO_ROOT / "autograder" / "profiles" / "synthetic.json").read_text()
    profile.write_text(text.replace('"calibrated": true', '"calibrated": false'))
    results_path = tmp_path / "r.json"
    argv = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        str(REPO_ROOT / REFERENCE_NOTEBOOK),
        "--profile",
        str(profile),
        "--only",
        "7.1.1",
        "--results",
        str(results_path),
    ]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "not calibrated" in done.stdout and "---- for the course staff ----" in done.stdout
    document = load_valid(results_path)
    assert "calibrated" not in document["output"]
    assert "(truncated)" not in done.stdout  # nothing was cut
