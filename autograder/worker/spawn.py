"""Starting a sandboxed child under its limits, and ending it: the one setup path every sandboxed thing takes.

What every sandboxed child gets (`spawn`):
- its own session and process group (`start_new_session`), so one `killpg` reaches its helpers;
- rlimits set in the child before `exec`: CPU time, private memory, file size, open files, core dumps
  off, and the process count when it runs as a dedicated user (see `Limits.processes`, `limits.rlimits`);
- when the grader is root and a `SandboxUser` is given: supplementary groups dropped, then gid, then
  uid (done by `subprocess.Popen`'s `extra_groups`/`group`/`user`, in that order, before `exec`);
- a scrubbed environment (`FIXED_ENV`, the `INHERITED_ENV` allow-list, HOME/TMPDIR pointing at a
  private directory, then the caller's variables) and umask 077;
- a private temporary directory (mode 0700, owned by the sandbox user), used as HOME, TMPDIR and, unless
  the caller gives `cwd`, as the working directory; removed when the call (or the handle) ends;
- with a `Confinement`, namespaces that show it only the allowed paths (`autograder.worker.confinement`).

When it ends, for whatever reason (`kill_everything`, then `reap`): SIGKILL to its process group and, with a
dedicated user, to every process of that user (daemons that called setsid() escape the group but not their uid).
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from autograder.worker.confinement import Confinement, confined_argv, confined_exit_code
from autograder.worker.leftovers import make_folder, remove_tree
from autograder.worker.limits import Limits, MiB, rlimits
from autograder.worker.users import SandboxUser, kill_user_processes

PRIVATE_DIR_PREFIX = "ps7-sandbox-"  # + the grader's pid + "-": removed by a later worker if the grader was killed

# Variables copied from the grader's environment when set: where programs and CUDA libraries live, which
# GPU to use, thread counts chosen by whoever runs the grader. Nothing else crosses (no tokens, no paths
# to hidden material).
INHERITED_ENV = (
    "PATH",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TZ",
)
# Set for every child, for reproducible and diagnosable runs: fixed hash seed, no .pyc writes, unbuffered
# output (what was printed before a kill is not lost), no display, no network lookups by Hugging Face.
FIXED_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONUNBUFFERED": "1",
    "MPLBACKEND": "Agg",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

POLL_SECONDS = 0.02  # how often a waiting caller checks whether the child exited
DRAIN_SECONDS = 2.0  # after the kill, how long to wait for pipe EOF (a setsid daemon may hold the pipe)
READ_CHUNK = 1 * MiB


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, (str, bytes)) or not argv:
        raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
    if not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must contain only strings, got {argv!r}")
    return list(argv)


def _build_env(private: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update(FIXED_ENV)
    for key in ("HOME", "TMPDIR", "TMP", "TEMP"):
        env[key] = str(private)
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
            raise TypeError(f"env entries must be str -> str with a name free of '=', got {key!r}: {value!r}")
        env[key] = value
    return env


def _make_private_dir(user: SandboxUser | None) -> Path:
    private = make_folder(PRIVATE_DIR_PREFIX)
    try:
        os.chmod(private, 0o700)
        if user is not None:
            os.chown(private, user.uid, user.gid)
            _check_traversable(private.parent, user)
    except BaseException:
        remove_tree(private)
        raise
    return private


def _check_traversable(directory: Path, user: SandboxUser) -> None:
    """Fail early, and clearly, when the sandbox user could not reach its own private directory."""
    for part in (directory, *directory.parents):
        st = os.stat(part)
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid == user.uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == user.gid and st.st_mode & stat.S_IXGRP:
            continue
        raise PermissionError(
            f"sandbox user {user.name} cannot enter {part} (mode {stat.filemode(st.st_mode)}), so it cannot "
            f"use a private directory under {directory}; set TMPDIR to a world-traversable directory like /tmp"
        )


def spawn(
    argv: Sequence[str],
    limits: Limits,
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None,
    user: SandboxUser | None,
    stdin_pipe: bool,
    confinement: Confinement | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start argv with the limits, environment, user and private directory (inside the confinement's namespaces
    when one is given); the one setup path."""
    command = _check_argv(argv)
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits, got {type(limits).__name__}")
    if user is not None and os.geteuid() != 0:
        raise PermissionError(f"running as sandbox user {user.name} needs root; pass user=None when not root")
    if cwd is not None and not Path(cwd).is_dir():
        raise NotADirectoryError(f"sandbox cwd {cwd} is not an existing directory")
    private = _make_private_dir(user)
    if confinement is not None:
        command = confined_argv(command, confinement, private, Path(cwd) if cwd is not None else private)
    try:
        child_env = _build_env(private, env)
        triples = rlimits(limits, user)

        def set_limits() -> None:  # runs in the child between fork and exec, after the user switch
            for res, soft, hard in triples:
                resource.setrlimit(res, (soft, hard))

        identity = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=str(cwd) if cwd is not None else str(private),
            env=child_env,
            start_new_session=True,
            preexec_fn=set_limits,
            umask=0o077,
            close_fds=True,
            **identity,
        )
    except PermissionError as error:
        remove_tree(private)
        if user is None:
            raise
        raise PermissionError(
            error.errno,
            f"sandbox user {user.name} cannot use {error.filename}: {error.strerror}; the program and the "
            "working directory must be reachable by others (o+x on every directory above them)",
            error.filename,
        ) from error
    except BaseException:
        remove_tree(private)
        raise
    return proc, private


def has_exited(pid: int) -> bool:
    """True once the child is dead, without reaping it: its pid (= its process group id) stays reserved,
    so a later killpg cannot hit an unrelated process that reused the number."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_everything(pid: int, user: SandboxUser | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if user is not None:
        kill_user_processes(user)


def reap(proc: subprocess.Popen[bytes]) -> resource.struct_rusage | None:
    """Wait for the child and record its status in the Popen object; return its resource usage."""
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # somebody else reaped it; Popen knows the code or it is lost
        if proc.returncode is None:
            proc.returncode = -signal.SIGKILL
        return None
    proc.returncode = confined_exit_code(proc.args, os.waitstatus_to_exitcode(status))
    return usage


def usage_cpu_seconds(usage: resource.struct_rusage | None) -> float:
    return 0.0 if usage is None else usage.ru_utime + usage.ru_stime


def usage_max_rss_bytes(usage: resource.struct_rusage | None) -> int:
    """Peak RSS as the kernel reports it; on Linux it includes the grader's own peak at fork time."""
    return 0 if usage is None else usage.ru_maxrss * 1024
