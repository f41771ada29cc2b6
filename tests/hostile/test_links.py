"""The trusted ingest refuses a submitted file that is a symbolic link: the grader runs as root on Gradescope,
so following one would read any file (the reference notebook, /etc/shadow) on the student's behalf."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.ingest import IngestError, ingest, read_cells


@pytest.mark.parametrize("target", [REPO_ROOT / REFERENCE_NOTEBOOK, Path("/etc/hostname")], ids=["reference", "etc"])
def test_a_symlinked_submission_is_refused(tmp_path: Path, target: Path):
    link = tmp_path / "ps7.ipynb"
    link.symlink_to(target)
    with pytest.raises(IngestError, match="symbolic link"):
        read_cells(link)
    with pytest.raises(IngestError, match="symbolic link"):
        ingest(link)


def test_the_file_itself_is_still_read(tmp_path: Path):
    copy = tmp_path / "ps7.ipynb"
    copy.write_bytes((REPO_ROOT / REFERENCE_NOTEBOOK).read_bytes())
    assert read_cells(copy)
