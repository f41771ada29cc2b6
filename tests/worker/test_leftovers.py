"""The folders of a process killed without cleanup are removed by the next one: by the pid in their names, with
real processes (alive, exited and reaped, exited and not yet reaped)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.worker.leftovers import make_folder, remove_abandoned, remove_tree

PREFIX = "ps7-test-leftover-"


def _exited(reap: bool) -> subprocess.Popen[bytes]:
    """A child that has exited: reaped, or left a zombie (the Popen is kept, so nothing reaps it behind our back)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    if reap:
        child.wait()
    else:
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
    return child


def test_folders_of_gone_processes_are_removed_and_the_rest_kept(tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    reaped, zombie = _exited(reap=True), _exited(reap=False)
    try:
        folders = {
            name: tmp_path / f"{PREFIX}{child.pid}-x"
            for name, child in (("alive", alive), ("reaped", reaped), ("zombie", zombie))
        }
        for folder in folders.values():
            (folder / "inner").mkdir(parents=True)
            (folder / "inner" / "file").write_text("left")
        (folders["reaped"] / "inner").chmod(0)  # what student code may do to its own folder
        unnamed = tmp_path / f"{PREFIX}nopid"
        unnamed.mkdir()
        target = tmp_path / "elsewhere"
        target.mkdir()
        link = tmp_path / f"{PREFIX}{reaped.pid}-link"
        link.symlink_to(target)
        removed = remove_abandoned(PREFIX, tmp_path)
        assert sorted(removed) == sorted([folders["reaped"], folders["zombie"]])
        assert folders["alive"].is_dir() and unnamed.is_dir() and link.is_symlink() and target.is_dir()
    finally:
        alive.kill()
        alive.wait()
        zombie.wait()


def test_a_new_folder_carries_this_processs_pid_and_is_kept_while_it_lives(tmp_path):
    folder = make_folder(PREFIX, tmp_path)
    assert folder.name.startswith(f"{PREFIX}{os.getpid()}-") and folder.is_dir()
    assert remove_abandoned(PREFIX, tmp_path) == [] and folder.is_dir()


def test_removing_never_acts_through_a_link(tmp_path):
    """A folder swapped for a link to somewhere else: nothing there is removed or has its permissions changed."""
    target = tmp_path / "elsewhere"
    (target / "locked").mkdir(parents=True)
    (target / "locked").chmod(0o500)
    link = tmp_path / "folder"
    link.symlink_to(target)
    remove_tree(link)
    assert link.is_symlink() and (target / "locked").is_dir()
    assert stat.S_IMODE((target / "locked").stat().st_mode) == 0o500


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a folder to another user")
def test_root_leaves_the_folders_of_users_that_are_not_graders(tmp_path):
    """Anyone can make a folder with our name in /tmp; root removes only its own and the sandbox users'."""
    dead = _exited(reap=True).pid
    foreign = tmp_path / f"{PREFIX}{dead}-foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    own = tmp_path / f"{PREFIX}{dead}-own"
    own.mkdir()
    assert remove_abandoned(PREFIX, tmp_path) == [own]
    assert foreign.is_dir()
