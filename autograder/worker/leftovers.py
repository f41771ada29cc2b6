"""Temporary folders named after the process that made them, so that the next process removes what a killed one left.

SIGKILL runs no cleanup: a grade stopped by `batch --timeout`, Slurm's time limit, the OOM killer or a TA's
`kill -9` leaves its task folder, its worker's private folder and its profile copy in the temporary directory.
Each is made as `<prefix><pid>-<random>` (`make_folder`), and a folder whose pid is gone is abandoned
(`remove_abandoned`, which the next task, worker or profile copy runs before making its own). A pid that is alive,
or that belongs to another user's process, keeps its folder. This assumes that whoever shares the temporary
directory shares the pid numbers too (one machine, or one container with its own `/tmp`, as Gradescope's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from autograder.worker.users import has_ended, is_sandbox_account


def make_folder(prefix: str, root: Path | None = None) -> Path:
    """A new folder (mode 0700) named `<prefix><this pid>-<random>`, after removing the abandoned ones."""
    remove_abandoned(prefix, root)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))


def remove_abandoned(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove the folders `<prefix><pid>-*` under `root` (the temporary directory) whose process is gone; links and
    files are left alone. Returns what it removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name.removeprefix(prefix).split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.is_symlink() or not _made_here(folder.lstat()) or not has_ended(int(pid)):
                continue
        except OSError:  # removed meanwhile
            continue
        remove_tree(folder)
        if not folder.exists():
            removed.append(folder)
    return removed


def _made_here(status: os.stat_result) -> bool:
    """A folder this user made, or (for root) one of the sandbox users' private folders; anyone else's is theirs to
    remove, and a non-root grader could not anyway."""
    if not stat.S_ISDIR(status.st_mode):
        return False
    return status.st_uid == os.geteuid() or (os.geteuid() == 0 and is_sandbox_account(status.st_uid))


def remove_tree(path: Path) -> None:
    """Remove a folder that student code may have written to, whatever it did inside; never raises, and never acts
    through a link, even one swapped in for the folder meanwhile."""
    try:
        shutil.rmtree(path)  # follows no link, and refuses a folder swapped for one while it works
    except FileNotFoundError:
        return
    except OSError:
        # Not root and the child removed its own permissions: give them back on real folders only, through
        # descriptors opened without following links, then retry.
        with contextlib.suppress(OSError):
            _restore_permissions(path)
        shutil.rmtree(path, ignore_errors=True)


def _restore_permissions(path: Path) -> None:
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for _folder, folders, _files, folder_fd in os.fwalk(dir_fd=top):
            for name in folders:
                with contextlib.suppress(OSError):
                    inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
                    try:
                        os.fchmod(inner, 0o700)
                    finally:
                        os.close(inner)
    finally:
        os.close(top)
