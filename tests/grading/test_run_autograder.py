"""`run_autograder` as Gradescope runs it, in a temporary AUTOGRADER_ROOT: always a valid results.json."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from tests.results.test_schema import load_valid

SCRIPT = REPO_ROOT / "run_autograder"


def run(root: Path, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AUTOGRADER_ROOT": str(root), "PS7_CACHE": str(cache), **env}
    return subprocess.run([str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=900, check=False)


def test_script_is_executable_bash():
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_reference_in_a_nested_folder_scores_full(synthetic_cache, tmp_path):
    nested = tmp_path / "submission" / "upload" / "work"
    nested.mkdir(parents=True)
    shutil.copy(REPO_ROOT / REFERENCE_NOTEBOOK, nested / "ps7_solution.ipynb")
    (tmp_path / "submission" / "notes.py").write_text("x = 1\n")  # a notebook is preferred over a .py
    (tmp_path / "source").symlink_to(REPO_ROOT)  # the grader's code from $AUTOGRADER_ROOT/source
    done = run(tmp_path, synthetic_cache, AUTOGRADER_SUITE="public")  # finding the file; no training needed
    assert done.returncode == 0, done.stderr
    document = load_valid(tmp_path / "results" / "results.json")
    assert document["tests"] and document["score"] == sum(test["max_score"] for test in document["tests"])
    assert "Total" in done.stdout


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ps7.ipynb", b"", "is empty"),
        ("ps7.ipynb", os.urandom(4096), "ps7.ipynb"),
        (None, b"", "no notebook (.ipynb) or Python file (.py) was found"),
    ],
    ids=["empty", "binary-garbage", "no-file"],
)
def test_broken_submissions_give_valid_results_with_zero(synthetic_cache, tmp_path, name, content, message):
    (tmp_path / "submission").mkdir()
    if name is not None:
        (tmp_path / "submission" / name).write_bytes(content)
    done = run(tmp_path, synthetic_cache)
    assert done.returncode == 0, done.stderr
    document = load_valid(tmp_path / "results" / "results.json")
    assert document["score"] == 0 and document["tests"]
    assert message in document["output"]


def test_a_failing_grader_still_leaves_a_valid_file(tmp_path):
    done = run(tmp_path, tmp_path / "no-cache", PS7_PYTHON="/bin/false")
    assert done.returncode == 0
    document = load_valid(tmp_path / "results" / "results.json")
    assert document["score"] == 0 and "autograder failed" in document["output"]


def test_an_unknown_profile_still_leaves_a_valid_file_and_exit_0(synthetic_cache, tmp_path):
    """`grade` refuses the profile as a usage error (exit 2, nothing written); run_autograder still leaves a file."""
    (tmp_path / "submission").mkdir()
    shutil.copy(REPO_ROOT / REFERENCE_NOTEBOOK, tmp_path / "submission" / "ps7.ipynb")
    done = run(tmp_path, synthetic_cache, AUTOGRADER_PROFILE="no-such-profile")
    assert done.returncode == 0
    assert "unknown profile 'no-such-profile'" in done.stderr
    document = load_valid(tmp_path / "results" / "results.json")
    assert document["score"] == 0 and "autograder failed" in document["output"]
