"""Temporary folders named after the process that made them, so that the next process removes what a killed one left.

SIGKILL runs no cleanup: a grade stopped by `batch --timeout`, Slurm's time limit, the OOM killer or a TA's
`kill -9` leaves its task folder, its worker's private folder and its profile copy in the temporary directory.
Each is made as `<prefix><pid>-<random>` (`make_folder`), and a folder whose pid is gone is abandoned
(`remove_abandoned`, which the next task, worker or profile copy runs before making its own). A pid that is alive,
or that belongs to another user's process, keeps its folder. This assumes that whoever shares the temporary
directory shares the pid numbers too (one machine, or one container with its own `/tmp`, as Gradescope's).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


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
        if not pid.isdigit() or folder.is_symlink() or not folder.is_dir() or not _gone(int(pid)):
            continue
        remove_tree(folder)
        if not folder.exists():
            removed.append(folder)
    return removed


def _gone(pid: int) -> bool:
    """The process has exited: no such pid, or a zombie (a killed grade whose parent died too lingers as one until
    init reaps it). A live pid of another user counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def remove_tree(path: Path) -> None:
    """Remove a folder that student code may have written to, whatever it did to the permissions inside."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError:
        # Not root and the child removed its own permissions: restore them on real directories only
        # (chmod follows symlinks, and a symlink may point anywhere), then retry.
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                sub = os.path.join(root, name)
                if not os.path.islink(sub):
                    os.chmod(sub, 0o700)
        shutil.rmtree(path, ignore_errors=True)
