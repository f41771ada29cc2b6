"""The unprivileged account student code runs as when the grader is root, and ending everything it runs.

One sandbox user runs one sandboxed thing at a time: the end-of-call cleanup (`kill_user_processes`) kills every
process of that user, including another worker started concurrently under the same name."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_USER = "ps7grader"

_KILL_ROUNDS = 200
_REAP_SECONDS = 30.0  # how long kill_user_processes waits for the killed processes' zombies to be reaped
# Zombies a new worker can live beside: each holds one of the user's RLIMIT_NPROC slots (512), a worker needs ~20.
ZOMBIES_TOLERATED = 32
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account student code runs as when the grader is root."""

    name: str
    uid: int
    gid: int


def ensure_sandbox_user(name: str = DEFAULT_USER) -> SandboxUser | None:
    """Return the sandbox user, creating it (system account, no home, no login shell) when missing.

    Returns None when not running as root: on a student's laptop or a TA's account the same code runs
    without the user switch, since only root can change uid.
    """
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise ValueError(f"invalid sandbox user name {name!r}: expected [a-z_][a-z0-9_-]{{0,30}}")
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        # Exit status 9 means the name exists: another grader process created it meanwhile.
        if done.returncode not in (0, 9):
            raise RuntimeError(
                f"could not create sandbox user {name!r}: {useradd} exited with {done.returncode}: "
                f"{done.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ValueError(f"user {name!r} has uid {entry.pw_uid} / gid {entry.pw_gid}; refusing a root sandbox user")
    return SandboxUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def kill_user_processes(user: SandboxUser) -> int:
    """SIGKILL every process whose real or effective uid is the sandbox user's; return how many.

    This reaches daemons that left the process group with setsid(). The /proc scan repeats until it
    finds no live process, so children forked between a scan and the kills are caught by the next round
    (RLIMIT_NPROC bounds how many there can be). Raises RuntimeError when processes survive every round
    (e.g. stuck in uninterruptible sleep), because the next grading run would then share the user with them.

    It then waits (at most `_REAP_SECONDS`) while more than `ZOMBIES_TOLERATED` of the killed processes'
    zombies wait to be reaped by whoever adopted them (some inits reap orphans only every second or two):
    a zombie runs nothing but still counts against the user's RLIMIT_NPROC, so a worker started at once
    after a fork bomb's 500 children were killed could not create its threads. Zombies whose parent is
    this process are not counted: the caller reaps its own child.
    """
    if user.uid == 0 or user.uid == os.geteuid():
        raise ValueError(f"refusing to kill all processes of uid {user.uid} ({user.name}): that is the grader")
    killed: set[int] = set()
    for _ in range(_KILL_ROUNDS):
        pids = [process.pid for process in _processes_of(user.uid) if not process.zombie]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.add(pid)
        time.sleep(0.01)
    else:
        survivors = sorted(process.pid for process in _processes_of(user.uid) if not process.zombie)
        if survivors:
            raise RuntimeError(f"processes of sandbox user {user.name} survived SIGKILL: {survivors}")
    reaped_by = time.monotonic() + _REAP_SECONDS
    while time.monotonic() < reaped_by and unreaped_zombies(user) > ZOMBIES_TOLERATED:
        time.sleep(0.05)
    return len(killed)


def unreaped_zombies(user: SandboxUser) -> int:
    """How many zombies of the user wait for a parent other than this process to reap them."""
    return sum(process.zombie and process.parent != os.getpid() for process in _processes_of(user.uid))


@dataclass(frozen=True)
class _Process:
    pid: int
    parent: int
    zombie: bool


def _processes_of(uid: int) -> list[_Process]:
    """Every process (zombies included) whose real or effective uid is `uid`, other than this one."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        read = _read_process(int(name))
        if read is not None and uid in read[1]:
            found.append(read[0])
    return found


def _read_process(pid: int) -> tuple[_Process, tuple[int, int]] | None:
    """The process `pid` and its real and effective uid, from /proc; None once it has gone."""
    try:
        status = Path("/proc", str(pid), "status").read_text()
    except OSError:  # exited while we looked
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        state = fields["State"].split()[0]
        real, effective = (int(value) for value in fields["Uid"].split()[:2])
        parent = int(fields["PPid"])
    except (KeyError, ValueError, IndexError):
        return None
    return _Process(pid, parent, state in ("Z", "X")), (real, effective)


def has_ended(pid: int) -> bool:
    """Process `pid` (any user's) has exited: no such pid, or a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # alive under another user, or not a pid at all
        return False
    read = _read_process(pid)
    return read is not None and read[0].zombie


def is_sandbox_account(uid: int) -> bool:
    """`uid` is one of the sandbox users: `DEFAULT_USER`, or `DEFAULT_USER<slot>` (`worker/access.py`)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return re.fullmatch(rf"{re.escape(DEFAULT_USER)}\d*", name) is not None
