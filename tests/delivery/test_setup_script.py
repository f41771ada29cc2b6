"""setup.sh from the unpacked zip. Installing for real needs apt and the PyTorch index, which tests cannot
reach, so its dry run (PS7_SETUP_DRY_RUN=1: the commands that change the machine are printed, not run) is
checked for what it would do, in which order, with which settings; the rest is `bash -n`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autograder.assignment.source import REPO_ROOT
from autograder.delivery.gradescope_zip import build_zip
from tests.delivery.helpers import unpack

FLICKR = "https://example.org/flickr8k.zip"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    build_zip(tmp_path / "upload.zip", "stl10", flickr8k=FLICKR)
    return unpack(tmp_path / "upload.zip", tmp_path / "source")


def dry_run(source: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PS7_", "AUTOGRADER_"))}
    environment.update(PS7_SETUP_DRY_RUN="1", **env)
    return subprocess.run(
        ["bash", str(source / "setup.sh")], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


def first(lines: list[str], pattern: str) -> int:
    return next(index for index, line in enumerate(lines) if re.search(pattern, line))


def test_setup_sh_is_valid_bash_with_strict_mode(source):
    assert subprocess.run(["bash", "-n", str(source / "setup.sh")], check=False).returncode == 0
    assert "set -euo pipefail" in (source / "setup.sh").read_text()


def test_dry_run_installs_pins_then_user_then_prepare_then_permissions_then_smoke_test(source):
    done = dry_run(source)
    assert done.returncode == 0, done.stderr
    lines = commands(done.stdout)
    pins = (source / "requirements-gradescope.txt").read_text()
    torch = re.search(r"^torch==\S+", pins, re.M).group()
    torchvision = re.search(r"^torchvision==\S+", pins, re.M).group()
    torch_line = lines[first(lines, "--index-url")]
    assert "https://download.pytorch.org/whl/cpu" in torch_line and "--no-deps" in torch_line
    assert torch_line.endswith(f"{torch} {torchvision}")
    venv_python = str(source / ".venv" / "bin" / "python")
    order = [
        first(lines, r"-m venv "),
        first(lines, "--index-url"),
        first(lines, "--requirement .*requirements-gradescope.txt"),
        first(lines, "--editable"),
        first(lines, "pip check"),
        first(lines, "ensure_sandbox_user"),
        first(lines, "autograder prepare"),
        first(lines, "^chown -R root:root"),
        first(lines, "autograder grade .*ps7_solution.ipynb"),
        first(lines, "autograder grade .*ps7.ipynb"),
    ]
    assert order == sorted(order)
    python_runs = [line for line in lines if re.search(" -m (pip|autograder) | -c ", line)]
    assert python_runs and all(line.startswith(venv_python) for line in python_runs)
    prepare = lines[order[6]]
    assert "--profile stl10" in prepare and f"--flickr8k {FLICKR}" in prepare  # from autograder_config.env
    assert all("--profile stl10" in line for line in lines if " autograder grade " in f" {line} ")


def test_environment_overrides_the_recorded_profile_and_the_torch_index(source):
    done = dry_run(source, AUTOGRADER_PROFILE="synthetic", PS7_TORCH_INDEX="")
    assert done.returncode == 0, done.stderr
    lines = commands(done.stdout)
    assert not any("--index-url" in line for line in lines)  # torch from the default index, pinned
    assert "--profile synthetic" in lines[first(lines, "autograder prepare")]


def test_a_missing_requirements_file_fails_loudly(source):
    (source / "requirements-gradescope.txt").unlink()
    done = dry_run(source)
    assert done.returncode != 0
    assert "FAILED" in done.stderr and "requirements-gradescope.txt is missing" in done.stderr
    assert not commands(done.stdout)


def test_every_runtime_dependency_is_pinned_within_pyproject_bounds():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    runtime = [
        Requirement(text)
        for text in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    assert runtime
    lines = (REPO_ROOT / "requirements-gradescope.txt").read_text().splitlines()
    pins = {canonicalize_name(req.name): req for req in map(Requirement, (x for x in lines if x and x[0] != "#"))}
    for dependency in runtime:
        pin = pins.get(canonicalize_name(dependency.name))
        assert pin is not None, f"{dependency.name} is not pinned in requirements-gradescope.txt"
        (exact,) = pin.specifier
        assert exact.operator == "==" and dependency.specifier.contains(exact.version), (dependency, pin)


def test_stl10_from_a_course_url_is_downloaded_and_unpacked_before_prepare_and_a_folder_is_passed_on(source):
    url = "https://course.example.org/stl10_binary.tar.gz"
    done = dry_run(source, PS7_STL10=url)
    assert done.returncode == 0, done.stderr
    lines = commands(done.stdout)
    folder = str(source / "data" / "stl10")
    download, unpacked = first(lines, f"^curl .*{re.escape(url)}"), first(lines, f"^tar -xzf .* -C {re.escape(folder)}")
    prepare = first(lines, "autograder prepare")
    assert download < unpacked < prepare and f"--stl10 {folder}" in lines[prepare]
    local = commands(dry_run(source, PS7_STL10="/data/stl10").stdout)
    assert "--stl10 /data/stl10" in local[first(local, "autograder prepare")]
    assert not any(line.startswith("curl") for line in local)
