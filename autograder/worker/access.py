"""What the sandbox user may read, when the grader runs as root: enough to run, nothing to forge with.

The worker needs the interpreter, the package and the prepared profile's images and backbones. It must
not read the solution (`assignment/ps7.py`, the reference notebook), the standard parts (`worker/standard.py`,
which the grader sends it when the tests of the student's own parts are done), the hidden suites, the
thresholds, the test labels, or the results folder. Access for "others" is the switch: the sandbox user owns none of
these files and is in none of their groups.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path

from autograder.assignment.source import PACKAGE_ROOT, REPO_ROOT, SOURCE_FILE
from autograder.profiles.layout import STL10_FOLDER, PreparedPaths
from autograder.profiles.profile import PROFILE_DIR, Profile
from autograder.worker.users import (
    DEFAULT_USER,
    ZOMBIES_TOLERATED,
    SandboxUser,
    ensure_sandbox_user,
    kill_user_processes,
    unreaped_zombies,
)

# The grader's correct Encoder, Decoder and ProjectionHead: the worker gets them as text from the grader, and only
# after the tests of the student's own versions (see `Worker.call`), so its file, compiled or not, is a secret.
STANDARD_FILE = PACKAGE_ROOT / "worker" / "standard.py"
_OTHERS = stat.S_IRWXO
MAX_CONCURRENT_GRADES = 32
LOCK_DIR = Path(tempfile.gettempdir()) / "ps7-sandbox-users"


class SandboxLease:
    """One sandbox user held by one grading run, so that concurrent runs (batch --jobs, parallel tests)
    never share a user: ending a run kills every process of its user, and must not kill another run's.

    Slot 0 is the user `setup.sh` creates; further slots get users named `<user>1`, `<user>2`, ... on
    demand. A slot is held by an exclusive lock on a file in a root-only folder; the kernel releases it
    when the holder dies, so a crashed grader never blocks a slot.
    """

    def __init__(self) -> None:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        for slot in range(MAX_CONCURRENT_GRADES):
            descriptor = os.open(LOCK_DIR / f"slot-{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            user = ensure_sandbox_user(DEFAULT_USER if slot == 0 else f"{DEFAULT_USER}{slot}")
            if user is None:
                os.close(descriptor)
                raise RuntimeError("a sandbox user is only needed (and only possible) when the grader is root")
            kill_user_processes(user)  # leftovers of a run that crashed while holding this slot
            if unreaped_zombies(user) > ZOMBIES_TOLERATED:  # an init that never reaps: they would starve the worker
                os.close(descriptor)
                continue
            self._descriptor = descriptor
            self.user: SandboxUser = user
            return
        raise RuntimeError(
            f"no sandbox user is free: more than {MAX_CONCURRENT_GRADES} grades at once as root, or the free users'"
            " killed processes are never reaped (the machine's init does not reap orphans)"
        )

    def release(self) -> None:
        """End every process of the user, then free the slot."""
        if self._descriptor < 0:
            return
        try:
            kill_user_processes(self.user)
        finally:
            os.close(self._descriptor)
            self._descriptor = -1


def secret_paths(profile: Profile) -> list[Path]:
    """Everything a submission could use to forge a grade, for this profile."""
    cache = profile.cache_dir()
    paths = [SOURCE_FILE, REPO_ROOT / "reference", PACKAGE_ROOT / "suites", REPO_ROOT / "tests"]
    paths += [STANDARD_FILE, *sorted(STANDARD_FILE.parent.glob(f"__pycache__/{STANDARD_FILE.stem}.*.pyc"))]
    paths += sorted(PROFILE_DIR.glob("*.json"))
    paths += [PreparedPaths(cache).stl10_labels, cache / "data" / "stl10" / STL10_FOLDER / "test_y.bin"]
    return paths


def exposed_originals(profile: Profile) -> list[str]:
    """Warnings for secrets outside the grader's own files that the sandbox user could read: the test labels
    in the STL-10 folder a real profile was prepared from. That folder is the course staff's, so the grader
    never changes its permissions (it grades from its own prepared copies); it says what to do instead."""
    manifest = PreparedPaths(profile.cache_dir()).manifest
    if not manifest.is_file():
        return []
    root = json.loads(manifest.read_text()).get("stl10_root")
    if not root or Path(root).resolve().is_relative_to(profile.cache_dir().resolve()):
        return []
    labels = Path(root) / STL10_FOLDER / "test_y.bin"
    if not labels.exists() or not _readable_by_others(labels):
        return []
    return [
        f"WARNING: {labels} (the STL-10 test labels) can be read by every user, the sandbox user included, so a "
        f"submission could read them. The grader does not change your files: run `chmod o-rwx {labels}` (or "
        "prepare from a copy only you can read)."
    ]


def _readable_by_others(path: Path) -> bool:
    """Readable by a user who owns none of it and is in none of its groups (every folder above must let it pass)."""
    if not os.stat(path).st_mode & stat.S_IROTH:
        return False
    return all(os.stat(folder).st_mode & stat.S_IXOTH for folder in path.resolve().parents)


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


def grant_tree_access(folder: Path) -> list[str]:
    """o+r on every file and o+rx on every folder under `folder` (the prepared profile): some writers,
    safetensors among them, create files readable by their owner only. Secrets are withheld afterwards."""
    changed = 0
    for directory, _, files in os.walk(folder):
        for path in [Path(directory), *(Path(directory) / name for name in files)]:
            mode = os.stat(path).st_mode
            wanted = mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
            if wanted != mode:
                os.chmod(path, wanted)
                changed += 1
    return [f"{folder}: made {changed} prepared files readable by the sandbox user"] if changed else []
