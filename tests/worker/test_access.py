"""What the grader may change to keep secrets from the sandbox user: its own files, never the course staff's."""

import json
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from autograder.data.stl10 import STL10_FOLDER
from autograder.profiles.prepare import PreparedPaths
from autograder.profiles.profile import load_profile
from autograder.worker.access import exposed_originals, secret_paths, withhold_from_sandbox


@pytest.fixture
def staff():
    """A folder of the course staff that every user can reach (pytest's own temporary folders are owner-only)."""
    folder = Path(tempfile.mkdtemp(prefix="ps7-staff-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def _prepared_from(staff, tmp_path, monkeypatch, mode: int):
    """A real profile whose manifest says it was prepared from the staff's folder."""
    monkeypatch.setenv("PS7_CACHE", str(tmp_path / "cache"))
    profile = load_profile("stl10")
    (staff / STL10_FOLDER).mkdir(parents=True)
    (staff / STL10_FOLDER).chmod(0o755)
    labels = staff / STL10_FOLDER / "test_y.bin"
    labels.write_bytes(bytes(range(1, 11)))
    labels.chmod(mode)
    manifest = PreparedPaths(profile.cache_dir()).manifest
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"stl10_root": str(staff)}))
    return profile, labels


def test_the_staff_folder_is_never_changed_but_its_readable_labels_are_reported(staff, tmp_path, monkeypatch):
    profile, labels = _prepared_from(staff, tmp_path, monkeypatch, 0o644)
    withhold_from_sandbox(secret_paths(profile))
    assert stat.S_IMODE(labels.stat().st_mode) == 0o644  # the staff's file is as it was
    warnings = exposed_originals(profile)
    assert len(warnings) == 1 and str(labels) in warnings[0] and "chmod o-rwx" in warnings[0]


def test_labels_only_their_owner_reads_need_no_warning(staff, tmp_path, monkeypatch):
    profile, labels = _prepared_from(staff, tmp_path, monkeypatch, 0o640)
    assert exposed_originals(profile) == []
