"""The Gradescope upload: `setup.sh` and `run_autograder` at the root with their run bits, the package
(hidden suites and profiles included), what `setup.sh` installs from, and the chosen profile.

Gradescope unpacks the zip into /autograder/source with `unzip`, which restores the Unix modes stored in
each entry, so the scripts' run bits travel in the entries themselves. Nothing local travels: no virtual
environment, caches, compiled files, tests or results. The output is byte-for-byte deterministic (sorted
entries, fixed timestamps, normalised modes), so two builds of the same tree can be compared with `cmp`.
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from pathlib import Path

from autograder.assignment.source import REPO_ROOT
from autograder.profiles.profile import available_profiles

PACKAGE = "autograder"
SCRIPTS = ("setup.sh", "run_autograder")
# What setup.sh installs from (pyproject.toml names README.md as the package's readme, so it goes too).
ROOT_FILES = ("pyproject.toml", "requirements-gradescope.txt", "README.md")
CONFIG_NAME = "autograder_config.env"
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", "~", ".egg-info")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class ZipError(Exception):
    """The upload cannot be built as asked (unknown profile, missing file)."""


def default_zip_path(profile: str) -> Path:
    """Where `zip` writes when not told: the ignored build/ folder of this checkout."""
    return REPO_ROOT / "build" / f"ps7-gradescope-{profile}.zip"


def config_text(profile: str, flickr8k: str | None = None, stl10: str | None = None) -> str:
    """autograder_config.env: the settings setup.sh and run_autograder read (the environment overrides them)."""
    values = {"AUTOGRADER_PROFILE": profile, "PS7_FLICKR8K": flickr8k, "PS7_STL10": stl10}
    lines = ["# Written by `python -m autograder zip`; read by setup.sh and run_autograder."]
    for name, value in values.items():
        if value is None:
            continue
        if "\n" in value or "\r" in value:
            raise ZipError(f"{name} must fit on one line, got {value!r}")
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def package_files(root: Path = REPO_ROOT) -> list[Path]:
    """The package's files, relative to `root`, sorted, without compiled files, hidden files or caches."""
    files = []
    for folder, dirs, names in os.walk(root / PACKAGE):
        dirs[:] = [name for name in dirs if name not in _SKIPPED_DIRS and not name.startswith(".")]
        for name in names:
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            files.append((Path(folder) / name).relative_to(root))
    return sorted(files, key=lambda path: path.as_posix())


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.create_system = 3  # Unix, so that unzip honours the mode below
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build_zip(
    out: Path, profile: str, *, flickr8k: str | None = None, stl10: str | None = None, root: Path = REPO_ROOT
) -> list[str]:
    """Write the upload to `out` (atomically) and return its entry names.

    `profile` must be one of the package's profiles: a profile file elsewhere would not be in the zip.
    `flickr8k` and `stl10` (a folder, or a URL of stl10_binary.tar.gz) are recorded for `setup.sh`'s prepare
    (real profiles only).
    """
    if profile not in available_profiles():
        raise ZipError(f"unknown profile {profile!r}; the zip can carry: {', '.join(available_profiles())}")
    for name in (*SCRIPTS, *ROOT_FILES):
        if not (root / name).is_file():
            raise ZipError(f"{root / name} is missing; the upload needs it")
    entries: list[tuple[str, int, bytes]] = [(name, 0o755, (root / name).read_bytes()) for name in SCRIPTS]
    entries += [(name, 0o644, (root / name).read_bytes()) for name in ROOT_FILES]
    entries.append((CONFIG_NAME, 0o644, config_text(profile, flickr8k, stl10).encode()))
    entries += [(path.as_posix(), 0o644, (root / path).read_bytes()) for path in package_files(root)]
    entries.sort(key=lambda entry: entry[0])

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream, zipfile.ZipFile(stream, "w") as archive:
            for name, mode, data in entries:
                archive.writestr(_entry(name, mode), data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return [name for name, _, _ in entries]
