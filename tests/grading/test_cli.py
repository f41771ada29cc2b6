"""`python -m autograder check` / `grade` as a student or a TA runs them: a subprocess whose stdout is read."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.grading.grade import TOTAL_POINTS
from autograder.results import load_results

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def autograder(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "autograder", *map(str, args)]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def _words(text: str) -> str:
    return " ".join(text.split())


def _reason_blocks(stdout: str) -> dict[str, str]:
    """The text printed under each test's heading line `NUMBER NAME  (score / max)`, keyed by number."""
    blocks: dict[str, str] = {}
    current = None
    for line in stdout.splitlines():
        heading = re.match(r"^(7\.\d\.\d\.\d+) .*  \(\d+\.\d\d / \d+\.\d\d\)$", line)
        if heading:
            current = heading.group(1)
            blocks[current] = ""
        elif current is not None and line.startswith("    "):
            blocks[current] += line + "\n"
        elif line.strip():
            current = None
    return blocks


def test_check_prints_every_lost_points_reason_in_full_and_a_summary(synthetic, tmp_path):
    """The template loses every public point: each test's whole message is on screen, under its full name."""
    done = autograder("check", REPO_ROOT / TEMPLATE_NOTEBOOK)
    assert done.returncode == 0, done.stderr
    graded = autograder("grade", REPO_ROOT / TEMPLATE_NOTEBOOK, "--suite", "public", "--results", tmp_path / "r.json")
    results = load_results(tmp_path / "r.json")
    assert "\x1b" not in done.stdout  # not a terminal: no colour
    assert "it/s" not in done.stdout and "%|" not in done.stdout  # no progress bar of the worker's training
    blocks = _reason_blocks(done.stdout)
    assert set(blocks) == {test.number for test in results.tests}
    for test in results.tests:
        assert any(" ".join(test.name.split()) in line for line in done.stdout.splitlines())  # never cut
        assert _words(test.output) == _words(blocks[test.number])  # the whole message, wrapped
        assert all(len(line) <= 100 or " " not in line.strip() for line in blocks[test.number].splitlines())
    public = sum(test.max_score for test in results.tests)
    summary = done.stdout.strip().splitlines()[-1]
    assert summary == (
        f"Public tests: 0 / {public:g} points. They cover {public:g} of the problem set's {TOTAL_POINTS:g} "
        f"points; the other {TOTAL_POINTS - public:g} are graded after the deadline."
    )
    assert graded.returncode == 0 and graded.stdout.strip().splitlines()[-2] == summary
    assert done.stdout.count("Public tests:") == 1, "the score is said once, in the summary"


def test_a_buggy_notebook_shows_only_the_tests_that_lost_points(synthetic, tmp_path):
    notebook = nbformat.read(REPO_ROOT / REFERENCE_NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("method 2 accuracy: 0.435", "method 2 accuracy: about half")
    path = tmp_path / "buggy.ipynb"
    nbformat.write(notebook, path)
    done = autograder("check", path, "--only", "7.1")
    assert done.returncode == 0, done.stderr
    blocks = _reason_blocks(done.stdout)
    assert list(blocks) == ["7.1.5.1"]
    assert "no number in `method 2 accuracy: about half`" in _words(blocks["7.1.5.1"])
    assert re.search(r"^7\.1\.5\.1 7\.1\.5 report: .*  \(0\.33 / 0\.50\)$", done.stdout, re.MULTILINE)
    assert done.stdout.strip().splitlines()[-1].startswith("Public tests: ")


def test_json_prints_the_results_document_alone(synthetic, tmp_path):
    done = autograder(
        "grade",
        REPO_ROOT / TEMPLATE_NOTEBOOK,
        "--suite",
        "public",
        "--only",
        "7.1.1",
        "--json",
        "--results",
        tmp_path / "r.json",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document == json.loads(Path(tmp_path / "r.json").read_text())
    assert [test["number"] for test in document["tests"]] == ["7.1.1.1", "7.1.1.2", "7.1.1.3", "7.1.1.4"]
    assert "results written to" in done.stderr


def _one_line_usage_error(done: subprocess.CompletedProcess[str], command: str, *expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: "), done.stderr
    assert all(text in lines[0] for text in expected), lines[0]
    assert "contact the course staff" not in done.stdout + done.stderr


def test_usage_errors_exit_2_with_one_line_and_write_nothing(synthetic, tmp_path):
    results = tmp_path / "r.json"
    (tmp_path / "notes.txt").write_text("method 1 accuracy: 0.3\n")
    cases = {
        "missing file": (("grade", tmp_path / "missing.ipynb"), "grade", ("missing.ipynb", "no such file or folder")),
        "not a notebook": (("grade", tmp_path / "notes.txt"), "grade", ("notes.txt", "not a notebook (.ipynb)")),
        "unknown profile": (
            ("grade", REPO_ROOT / TEMPLATE_NOTEBOOK, "--profile", "nope"),
            "grade",
            ("unknown profile 'nope'", "synthetic"),
        ),
        "no test selected": (
            ("grade", REPO_ROOT / TEMPLATE_NOTEBOOK, "--only", "9.9"),
            "grade",
            ("no test matches --only 9.9", "7.1.1"),
        ),
    }
    for arguments, command, expected in cases.values():
        _one_line_usage_error(autograder(*arguments, "--results", results), command, *expected)
        assert not results.exists()
    _one_line_usage_error(
        autograder("check", REPO_ROOT / TEMPLATE_NOTEBOOK, "--only", "9.9"),
        "check",
        "no public test matches --only 9.9",
    )
    _one_line_usage_error(  # a hidden test is not in the public suite
        autograder("check", REPO_ROOT / TEMPLATE_NOTEBOOK, "--only", "7.1.5.2"), "check", "--only 7.1.5.2"
    )
    _one_line_usage_error(autograder("check", tmp_path / "missing.ipynb"), "check", "no such file or folder")
    _one_line_usage_error(autograder("batch", tmp_path / "no-folder"), "batch", "no such folder")
    (tmp_path / "folder").mkdir()
    _one_line_usage_error(autograder("batch", tmp_path / "folder", "--profile", "nope"), "batch", "unknown profile")
    _one_line_usage_error(autograder("batch", tmp_path / "folder", "--gpus", "1,1"), "batch", "--gpus", "twice")
    local_with_scheduler = autograder("batch", tmp_path / "folder", "--scheduler", "tcp://x:1")
    _one_line_usage_error(local_with_scheduler, "batch", "--executor dask")


def test_a_submission_that_cannot_be_read_is_graded_with_exit_0(synthetic, tmp_path):
    """The student's problem, not the grader's: every test is listed at 0 with the reason."""
    broken = tmp_path / "ps7.ipynb"
    broken.write_text('{"cells": 3}')
    empty_folder = tmp_path / "submission"
    empty_folder.mkdir()
    for submission, reason in ((broken, "ps7.ipynb"), (empty_folder, "no notebook (.ipynb) or Python file (.py)")):
        results = tmp_path / f"{submission.name}.json"
        done = autograder("grade", submission, "--results", results)
        assert done.returncode == 0, done.stderr
        document = load_results(results)
        assert document.tests and document.total_score == 0
        assert all(reason in test.output and "could not be read" in test.output for test in document.tests)
        assert reason in done.stdout


def _until_watching(process: subprocess.Popen[str], log: list[str]) -> str:
    """The lines `check --watch` prints for one check, up to its "watching" line."""
    answer: list[str] = []
    for line in process.stdout:
        log.append(line)
        answer.append(line)
        if line.startswith("==== watching"):
            return "".join(answer)
    raise AssertionError("check --watch ended before answering:\n" + "".join(log[-60:]))


def test_watch_checks_again_after_each_save_with_the_new_contents_and_stops_on_ctrl_c(synthetic, tmp_path):
    notebook = tmp_path / "ps7.ipynb"
    notebook.write_bytes((REPO_ROOT / TEMPLATE_NOTEBOOK).read_bytes())
    argv = [sys.executable, "-m", "autograder", "check", "--watch", str(notebook)]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    try:
        first = _until_watching(process, log)
        assert "Public tests: 0 / 5.1 points." in first and first.startswith(f"==== checking {notebook}")
        notebook.write_bytes((REPO_ROOT / REFERENCE_NOTEBOOK).read_bytes())  # the student's save
        second = _until_watching(process, log)
        assert "Public tests: 5.1 / 5.1 points." in second, second
        notebook.touch()  # the same contents: no check
        notebook.write_bytes(b"{ not a notebook")
        third = _until_watching(process, log)
        assert "is not a notebook" in _words(third) and "Public tests: 0 / 5.1 points." in third, third
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "stopped watching" in rest, "".join(log) + rest
    assert "".join(log).count("==== checking") == 3


def test_watch_refuses_json_and_folders_with_a_usage_error(tmp_path):
    for extra, message in ((["--json"], "--watch prints for people"), ([], "not a folder")):
        target = tmp_path if not extra else REPO_ROOT / TEMPLATE_NOTEBOOK
        done = autograder("check", "--watch", target, *extra, timeout=60)
        assert done.returncode == 2 and message in done.stderr, done.stderr
