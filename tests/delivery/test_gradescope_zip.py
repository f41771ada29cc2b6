"""The Gradescope upload: its layout and run bits, and `run_autograder` from the unpacked zip in a temporary
AUTOGRADER_ROOT, as Gradescope runs it (no virtual environment in the zip: PS7_PYTHON is this interpreter)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.delivery.gradescope_zip import CONFIG_NAME, ZipError, build_zip
from tests.delivery.helpers import build_with_cli, unpack
from tests.results.test_schema import load_valid


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_with_cli(tmp_path_factory.mktemp("zip") / "ps7.zip")


def modes(archive: Path) -> dict[str, int]:
    with zipfile.ZipFile(archive) as opened:
        assert all(info.create_system == 3 for info in opened.infolist()), "modes are honoured only for Unix entries"
        return {info.filename: (info.external_attr >> 16) & 0o7777 for info in opened.infolist()}


def test_scripts_at_the_root_with_their_run_bits(upload):
    entries = modes(upload)
    assert entries["setup.sh"] == 0o755 and entries["run_autograder"] == 0o755
    assert {mode for name, mode in entries.items() if name not in ("setup.sh", "run_autograder")} == {0o644}
    for name in ("pyproject.toml", "requirements-gradescope.txt", CONFIG_NAME, "autograder/__main__.py"):
        assert name in entries


def test_the_suites_profiles_and_assignment_travel(upload):
    entries = modes(upload)
    suites = sorted(path.name for path in (REPO_ROOT / "autograder" / "suites").glob("test_*.py"))
    shipped = sorted(Path(name).name for name in entries if name.startswith("autograder/suites/test_"))
    assert suites and shipped == suites
    for name in ("autograder/suites/conftest.py", "autograder/profiles/synthetic.json", "autograder/assignment/ps7.py"):
        assert name in entries


def test_nothing_local_travels(upload):
    for name in modes(upload):
        parts = Path(name).parts
        assert parts[0] not in {".venv", "tests", "reference", "student_template", "bench", "build", ".git"}, name
        assert "__pycache__" not in parts and not name.endswith((".pyc", ".egg-info")), name
        assert not any(part.startswith(".") for part in parts) and name != "results.json", name


def test_the_profile_is_recorded_and_builds_are_identical(tmp_path):
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip(first, "stl10", flickr8k="https://example.org/flickr8k.zip")
    build_zip(second, "stl10", flickr8k="https://example.org/flickr8k.zip")
    assert first.read_bytes() == second.read_bytes()
    config = zipfile.ZipFile(first).read(CONFIG_NAME).decode()
    assert "AUTOGRADER_PROFILE=stl10\n" in config and "PS7_FLICKR8K=https://example.org/flickr8k.zip\n" in config


def test_an_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ZipError, match="unknown profile 'nope'"):
        build_zip(tmp_path / "x.zip", "nope")
    assert not (tmp_path / "x.zip").exists()


def test_run_autograder_reads_the_recorded_profile_and_the_environment_wins(tmp_path):
    build_zip(tmp_path / "u.zip", "stl10")
    source = unpack(tmp_path / "u.zip", tmp_path / "root" / "source")
    spy = tmp_path / "python"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\nexit 0\n')
    spy.chmod(0o755)
    script = source / "run_autograder"
    environment = {**os.environ, "AUTOGRADER_ROOT": str(tmp_path / "root"), "PS7_PYTHON": str(spy)}
    environment.pop("AUTOGRADER_PROFILE", None)
    for extra in ({}, {"AUTOGRADER_PROFILE": "synthetic"}):
        subprocess.run([str(script)], env={**environment, **extra}, capture_output=True, timeout=60, check=True)
    grade_calls = [line for line in (tmp_path / "calls").read_text().splitlines() if " grade " in f" {line} "]
    assert len(grade_calls) == 2
    assert "--profile stl10" in grade_calls[0] and "--profile synthetic" in grade_calls[1]


def run_from_zip(root: Path, notebook: Path, cache: Path) -> dict:
    shutil.rmtree(root / "submission", ignore_errors=True)
    (root / "submission").mkdir(parents=True)
    shutil.copy(REPO_ROOT / notebook, root / "submission" / notebook.name)
    environment = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "PS7_CACHE": str(cache),
        "PS7_PYTHON": sys.executable,
        "AUTOGRADER_SUITE": "public",
    }
    environment.pop("AUTOGRADER_PROFILE", None)
    done = subprocess.run(
        [str(root / "run_autograder")], env=environment, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr
    return load_valid(root / "results" / "results.json")


@pytest.mark.slow
def test_run_autograder_from_the_unpacked_zip_grades_reference_full_and_template_zero(
    upload, synthetic_cache, tmp_path
):
    root = tmp_path / "autograder"
    source = unpack(upload, root / "source")
    # Gradescope copies run_autograder to the root and runs it from there.
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    assert stat.S_IMODE((root / "run_autograder").stat().st_mode) == 0o755
    # The code that runs is the unpacked package, not this checkout.
    where = subprocess.run(
        [sys.executable, "-c", "import autograder; print(autograder.__file__)"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(source)

    reference = run_from_zip(root, REFERENCE_NOTEBOOK, synthetic_cache)
    template = run_from_zip(root, TEMPLATE_NOTEBOOK, synthetic_cache)
    full = sum(test["max_score"] for test in reference["tests"])
    assert reference["tests"] and full > 0 and reference["score"] == pytest.approx(full)
    assert template["score"] == 0
    assert [test["name"] for test in template["tests"]] == [test["name"] for test in reference["tests"]]
