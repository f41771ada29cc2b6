"""What a sandboxed worker can see: an allow-list of read-only paths in namespaces of its own (bubblewrap).

File permissions (`autograder.worker.access`) hide the grader's secrets from the sandbox user only as long as
every copy of them on the machine is locked down: a checkout's `.git`, a course folder readable by everyone,
another grade's files in `/tmp`. A mount namespace turns that deny-list into an allow-list: the worker sees
the runtime it needs (system folders, the interpreter, the package, the prepared profile) read-only, its own
private folder read-write, empty private `/tmp` and `/dev/shm`, and nothing else; secrets inside allowed trees
(the solution, the hidden suites, the profiles, the test labels) are masked. It also gets its own PID namespace
(everything it starts dies with it), no network (only a loopback that is down), its own IPC and UTS.

Bubblewrap (`bwrap`, Debian's `bubblewrap` package) does the mounting as an unprivileged user through a user
namespace, so the uid switch to the sandbox user stays in force underneath it. Where bwrap is missing or the
kernel or a container refuses namespaces, `available` says why and the caller falls back to uid separation.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# The runtime every process needs, read-only when present: programs, shared libraries, system configuration.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys/devices/system/cpu")
# A GPU grader's devices (CUDA opens them directly); absent on a CPU machine, and then nothing is bound.
GPU_DEVICE_GLOBS = ("nvidia*", "nvidia-caps/*", "dri/*")
_PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Confinement:
    """`readable`: trees the worker may read (besides the system's); `hidden`: files or folders inside them it
    must not see (a folder becomes an empty one, a file an empty file). Its private folder, the one place it
    may write, is added by the sandbox when it creates it."""

    readable: tuple[Path, ...]
    hidden: tuple[Path, ...] = ()


@cache
def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _namespace_options() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--tmpfs", "/dev/shm"]


@cache
def _probe(uid: int | None, gid: int | None) -> str | None:
    """None when bubblewrap can build the namespaces for this identity, else why not (cached per identity:
    the answer depends on the kernel and the container, which do not change while the grader runs)."""
    program = _bwrap()
    if program is None:
        return "bubblewrap (`bwrap`) is not installed (Debian/Ubuntu package `bubblewrap`)"
    identity = {} if uid is None else {"user": uid, "group": gid, "extra_groups": []}
    command = [program, *_namespace_options(), *_system_binds(), "--", "/bin/true"]
    try:
        result = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT, check=False, **identity)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not be started ({error})"
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap cannot create namespaces here ({detail[-1] if detail else f'exit {result.returncode}'})"
    return None


def unavailable_reason(uid: int | None = None, gid: int | None = None) -> str | None:
    """Why the worker cannot be confined for this identity (None: it can)."""
    return _probe(uid, gid)


def _system_binds() -> list[str]:
    options: list[str] = []
    for path in SYSTEM_PATHS:
        options += ["--ro-bind-try", path, path]
    devices = Path("/dev")
    for pattern in GPU_DEVICE_GLOBS:
        for device in sorted(devices.glob(pattern)):
            options += ["--dev-bind-try", str(device), str(device)]
    return options


def confined_argv(argv: Sequence[str], confinement: Confinement, private: Path, cwd: Path) -> list[str]:
    """`argv` run by bubblewrap inside the confinement, with `private` writable, in `cwd` (a visible folder)."""
    program = _bwrap()
    if program is None:
        raise FileNotFoundError("bwrap")
    options = [program, *_namespace_options(), *_system_binds()]
    # By their real paths: the worker reaches everything through them, and a symlinked way in (a checkout
    # linked into a private folder) may be closed to the sandbox user.
    for path in dict.fromkeys(os.path.realpath(path) for path in confinement.readable):
        options += ["--ro-bind-try", path, path]
    for path in map(Path, dict.fromkeys(os.path.realpath(path) for path in confinement.hidden)):
        if path.is_dir():
            options += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists():
            options += ["--dev-bind", "/dev/null", str(path)]  # reads as empty; a plain bind is nodev
    options += ["--bind", str(private), str(private), "--chdir", str(cwd)]
    return [*options, "--", *argv]


def confined_exit_code(argv: object, code: int) -> int:
    """The exit code of the command bubblewrap ran, as Popen gives it (negative for a signal): bwrap exits with
    128 + N when its child was killed by signal N, which would otherwise read as a plain exit."""
    program = _bwrap()
    ran_in_bwrap = isinstance(argv, list | tuple) and bool(argv) and program is not None and argv[0] == program
    if ran_in_bwrap and 128 < code < 128 + signal.NSIG:
        return -(code - 128)
    return code
