"""What the sandbox user may read, when the grader runs as root: enough to run, nothing to forge with.

The worker needs the interpreter, the package and the prepared profile's images and backbones. It must
not read the solution (`assignment/ps7.py`, the reference notebook), the hidden suites, the thresholds,
the test labels, or the results folder. Access for "others" is the switch: the sandbox user owns none of
these files and is in none of their groups.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from autograder.assignment.source import PACKAGE_ROOT, SOURCE_FILE
from autograder.data.stl10 import STL10_FOLDER
from autograder.profiles.prepare import PreparedPaths
from autograder.profiles.profile import PROFILE_DIR, Profile

REPO_ROOT = PACKAGE_ROOT.parent
_OTHERS = stat.S_IRWXO


def secret_paths(profile: Profile) -> list[Path]:
    """Everything a submission could use to forge a grade, for this profile."""
    cache = profile.cache_dir()
    paths = [SOURCE_FILE, REPO_ROOT / "reference", PACKAGE_ROOT / "suites", REPO_ROOT / "tests"]
    paths += sorted(PROFILE_DIR.glob("*.json"))
    paths += [PreparedPaths(cache).stl10_labels, cache / "data" / "stl10" / STL10_FOLDER / "test_y.bin"]
    manifest = PreparedPaths(cache).manifest
    if manifest.is_file():
        root = json.loads(manifest.read_text()).get("stl10_root")
        if root:
            paths.append(Path(root) / STL10_FOLDER / "test_y.bin")
    return paths


def withhold_from_sandbox(paths: list[Path]) -> list[str]:
    """Remove every access bit for "others" from each existing path (a folder then hides all it holds).
    Returns what was changed, for the grading log."""
    changed = []
    for path in paths:
        if not path.exists():
            continue
        mode = os.stat(path).st_mode
        if mode & _OTHERS:
            os.chmod(path, mode & ~_OTHERS)
            changed.append(f"{path}: removed access for others so the sandbox user cannot read it")
    return changed


def grant_sandbox_access(paths: list[Path]) -> list[str]:
    """Let the sandbox user reach the interpreter, the package and the profile cache by adding o+x
    (traverse, not list) to every directory above them that lacks it, and o+r to the paths themselves.
    Returns what was changed, for the grading log."""
    changed = []
    for path in paths:
        path = path.resolve()
        if not path.exists():
            continue
        for directory in reversed(path.parents):
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                os.chmod(directory, os.stat(directory).st_mode | stat.S_IXOTH)
                changed.append(f"{directory}: added o+x so the sandbox user can reach {path}")
        mode = os.stat(path).st_mode
        wanted = mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        if wanted != mode:
            os.chmod(path, wanted)
            changed.append(f"{path}: added o+r so the sandbox user can read it")
    return changed
