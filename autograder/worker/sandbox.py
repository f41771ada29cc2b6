"""Run untrusted student code under resource limits: the one primitive every worker goes through.

Two entry points share one setup path (`_spawn`): `run_sandboxed` runs a command to completion and
returns a `SandboxResult`; `start_sandboxed` starts a long-lived child (a persistent worker) and
returns a `SandboxProcess` handle with stdin/stdout pipes for the caller's request/response protocol.

What every sandboxed child gets:
- its own session and process group (`start_new_session`), so one `killpg` reaches its helpers;
- rlimits set in the child before `exec`: CPU time, address space, file size, open files, core dumps
  off, and the process count when it runs as a dedicated user (see `Limits.processes`);
- when the grader is root and a `SandboxUser` is given: supplementary groups dropped, then gid, then
  uid (done by `subprocess.Popen`'s `extra_groups`/`group`/`user`, in that order, before `exec`);
- a scrubbed environment (`FIXED_ENV`, the `INHERITED_ENV` allow-list, HOME/TMPDIR pointing at a
  private directory, then the caller's variables) and umask 077;
- a private temporary directory (mode 0700, owned by the sandbox user), used as HOME, TMPDIR and, unless
  the caller gives `cwd`, as the working directory; removed when the call (or the handle) ends;
- stdout/stderr read concurrently and capped: the first 3/4 and the last 1/4 of `output_bytes` are kept
  (the tail is where a traceback is), the middle is replaced by a "[... N bytes truncated]" marker.
  Reading continues past the cap so the child never blocks on a full pipe; a child that writes more than
  `output_kill_bytes` in total is killed, so a print loop cannot keep the grader busy until the timeout.
- when the call ends, for whatever reason, SIGKILL to its process group and, with a dedicated user, to
  every process of that user (daemons that called setsid() escape the group but not their uid).

One sandbox user runs one sandboxed thing at a time: the end-of-call cleanup kills every process of that
user, including another worker started concurrently under the same name.
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from autograder.truncation import keep_ends
from autograder.worker.confinement import Confinement, confined_argv, confined_exit_code

MiB = 1024**2
GiB = 1024**3

DEFAULT_USER = "ps7grader"
PRIVATE_DIR_PREFIX = "ps7-sandbox-"

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

_POLL_SECONDS = 0.02  # how often the run loop checks whether the child exited
_DRAIN_SECONDS = 2.0  # after the kill, how long to wait for pipe EOF (a setsid daemon may hold the pipe)
_READ_CHUNK = 1 * MiB
_WRITE_CHUNK = 64 * 1024
_KILL_ROUNDS = 200
_REAP_SECONDS = 30.0  # how long kill_user_processes waits for the killed processes' zombies to be reaped
# Zombies a new worker can live beside: each holds one of the user's RLIMIT_NPROC slots (512), a worker needs ~20.
ZOMBIES_TOLERATED = 32
_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"can't allocate memory", b"Cannot allocate memory")
_FILE_SIZE_MARKER = b"File too large"
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command (or one persistent worker's whole life).

    Defaults suit grading one PS7 submission on a CPU:
    - wall_seconds (300): wall-clock budget; the process group is SIGKILLed when it runs out. For a
      persistent worker it bounds the worker's lifetime; per-request timeouts are the protocol's job.
    - cpu_seconds (1200): RLIMIT_CPU, summed over all threads (torch uses one per core), so it is
      four busy cores for the whole wall budget. SIGXCPU at the limit, SIGKILL one second later. The
      kernel enforces it even if the grader dies, which the wall clock cannot promise.
    - memory_bytes (8 GiB): RLIMIT_AS, i.e. address space, not resident memory; allocations beyond it fail
      (Python raises MemoryError). Measured on CPU: `import torch` alone maps 3.1 GiB; importing torch,
      torchvision and transformers, building DistilBERT and a ResNet50 and running one backward pass on
      32 64x64 images peaks at 4.3 GiB of address space (1.7 GiB resident), so 4 GiB would kill a correct
      worker. None disables the limit, which CUDA needs: a GPU context reserves far more address space
      than any sensible limit.
    - file_bytes (512 MiB): RLIMIT_FSIZE, the largest file the child may write (checkpoints are smaller).
    - processes (512): RLIMIT_NPROC. The kernel counts every process and thread of the *real user*, not
      of this child, so it is applied only when the child runs as a dedicated sandbox user; applied to
      a student's own account it would count their desktop too. Torch threads count against it.
    - open_files (4096): RLIMIT_NOFILE (a DataLoader sharing tensors through file descriptors needs many).
    - output_bytes (1 MiB): stdout and stderr are each capped to this many captured bytes.
    - output_kill_bytes (64 MiB): the child is killed once stdout+stderr exceed this in total.
    Core dumps are always disabled (RLIMIT_CORE = 0). Limits above the grader's own hard limits are
    lowered to them (an unprivileged process cannot raise a hard limit).
    """

    wall_seconds: float = 300.0
    cpu_seconds: int = 1200
    memory_bytes: int | None = 8 * GiB
    file_bytes: int = 512 * MiB
    processes: int = 512
    open_files: int = 4096
    output_bytes: int = 1 * MiB
    output_kill_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        wall = self.wall_seconds
        if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not wall > 0 or wall == float("inf"):
            raise ValueError(f"Limits.wall_seconds must be a positive number, got {self.wall_seconds!r}")
        for name in ("cpu_seconds", "file_bytes", "processes", "open_files", "output_bytes", "output_kill_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if self.memory_bytes is not None and (
            not isinstance(self.memory_bytes, int) or isinstance(self.memory_bytes, bool) or self.memory_bytes <= 0
        ):
            raise ValueError(f"Limits.memory_bytes must be a positive integer or None, got {self.memory_bytes!r}")
        if self.output_kill_bytes < self.output_bytes:
            raise ValueError(
                f"Limits.output_kill_bytes ({self.output_kill_bytes}) must be at least "
                f"Limits.output_bytes ({self.output_bytes})"
            )


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
        try:
            status = Path("/proc", name, "status").read_text()
        except OSError:  # exited while we looked
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            state = fields["State"].split()[0]
            real, effective = (int(value) for value in fields["Uid"].split()[:2])
            parent = int(fields["PPid"])
        except (KeyError, ValueError, IndexError):
            continue
        if uid in (real, effective):
            found.append(_Process(int(name), parent, state in ("Z", "X")))
    return found


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed command did. returncode follows Popen: negative signal number when killed."""

    argv: tuple[str, ...]
    limits: Limits
    returncode: int
    signal_name: str | None
    timed_out: bool
    output_flooded: bool
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_flooded

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """One line saying why the command ended, for feedback shown to students."""
        return _describe(
            self.returncode, self.timed_out, self.output_flooded, self.limits, self.stderr, self.cpu_seconds
        )


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _describe(
    returncode: int, timed_out: bool, flooded: bool, limits: Limits, stderr: bytes, cpu_seconds: float
) -> str:
    if timed_out:
        return f"killed after {limits.wall_seconds:g} s wall-clock timeout"
    if flooded:
        return f"killed after writing more than {_fmt_bytes(limits.output_kill_bytes)} of output"
    name = _signal_name(returncode)
    if name is not None:
        number = -returncode
        reason = signal.strsignal(number) if name[0] == "S" else None
        ending = f"killed by {name}" + (f" ({reason[0].lower()}{reason[1:]})" if reason else "")
    else:
        number = 0
        ending = f"exited with code {returncode}" if returncode else "exited normally (code 0)"
    if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_seconds >= limits.cpu_seconds):
        return f"exceeded CPU-time limit of {limits.cpu_seconds} s ({ending})"
    if returncode != 0 and limits.memory_bytes is not None and any(m in stderr for m in _MEMORY_MARKERS):
        return f"exceeded memory limit of {_fmt_bytes(limits.memory_bytes)} address space ({ending})"
    if number == signal.SIGXFSZ or (returncode != 0 and _FILE_SIZE_MARKER in stderr):
        return f"exceeded file-size limit of {_fmt_bytes(limits.file_bytes)} ({ending})"
    if number == signal.SIGKILL:
        return "killed by SIGKILL from outside the sandbox (often the system's out-of-memory killer)"
    return ending


class _Capture:
    """Keeps the head and the tail of a stream within a byte budget and counts what it dropped."""

    def __init__(self, cap: int) -> None:
        self._tail_cap = cap // 4
        self._head_cap = cap - self._tail_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data and self._tail_cap:
            self._tail += data[-self._tail_cap :]
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._tail)

    def value(self) -> bytes:
        if not self.truncated:
            return bytes(self._head + self._tail)
        dropped = self.total - len(self._head) - len(self._tail)
        marker = f"\n[... {dropped} bytes truncated]\n".encode()
        return keep_ends(bytes(self._head + self._tail), len(self._head), len(self._tail), marker)


# ---------------------------------------------------------------- shared setup


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


def _rlimits(limits: Limits, user: SandboxUser | None) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) triples, computed in the parent so the child only calls setrlimit."""
    wanted = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
    ]
    if limits.memory_bytes is not None:
        wanted.append((resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
    if user is not None:
        wanted.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    result = []
    for res, soft, hard in wanted:
        current_hard = resource.getrlimit(res)[1]
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
        result.append((res, min(soft, hard), hard))
    return result


def _make_private_dir(user: SandboxUser | None) -> Path:
    private = Path(tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX))
    try:
        os.chmod(private, 0o700)
        if user is not None:
            os.chown(private, user.uid, user.gid)
            _check_traversable(private.parent, user)
    except BaseException:
        _remove_tree(private)
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


def _remove_tree(path: Path) -> None:
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


def _spawn(
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
        rlimits = _rlimits(limits, user)

        def set_limits() -> None:  # runs in the child between fork and exec, after the user switch
            for res, soft, hard in rlimits:
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
        _remove_tree(private)
        if user is None:
            raise
        raise PermissionError(
            error.errno,
            f"sandbox user {user.name} cannot use {error.filename}: {error.strerror}; the program and the "
            "working directory must be reachable by others (o+x on every directory above them)",
            error.filename,
        ) from error
    except BaseException:
        _remove_tree(private)
        raise
    return proc, private


def _has_exited(pid: int) -> bool:
    """True once the child is dead, without reaping it: its pid (= its process group id) stays reserved,
    so a later killpg cannot hit an unrelated process that reused the number."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_everything(pid: int, user: SandboxUser | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if user is not None:
        kill_user_processes(user)


def _reap(proc: subprocess.Popen[bytes]) -> resource.struct_rusage | None:
    """Wait for the child and record its status in the Popen object; return its resource usage."""
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # somebody else reaped it; Popen knows the code or it is lost
        if proc.returncode is None:
            proc.returncode = -signal.SIGKILL
        return None
    proc.returncode = confined_exit_code(proc.args, os.waitstatus_to_exitcode(status))
    return usage


def _cpu_seconds(usage: resource.struct_rusage | None) -> float:
    return 0.0 if usage is None else usage.ru_utime + usage.ru_stime


def _max_rss(usage: resource.struct_rusage | None) -> int:
    """Peak RSS as the kernel reports it; on Linux it includes the grader's own peak at fork time."""
    return 0 if usage is None else usage.ru_maxrss * 1024


# ---------------------------------------------------------------- one-shot commands


def run_sandboxed(
    argv: list[str],
    limits: Limits,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin_bytes: bytes | None = None,
    user: SandboxUser | None = None,
    confinement: Confinement | None = None,
) -> SandboxResult:
    """Run argv to completion in the sandbox and report what happened; never raises for child failures.

    stdin is /dev/null unless stdin_bytes is given. Raises only for bad arguments or when the child
    cannot be started (e.g. FileNotFoundError for a missing program).
    """
    if stdin_bytes is not None and not isinstance(stdin_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"stdin_bytes must be bytes or None, got {type(stdin_bytes).__name__}")
    start = time.monotonic()
    proc, private = _spawn(
        argv, limits, cwd=cwd, env=env, user=user, stdin_pipe=stdin_bytes is not None, confinement=confinement
    )
    captures = {proc.stdout: _Capture(limits.output_bytes), proc.stderr: _Capture(limits.output_bytes)}
    timed_out = flooded = False
    usage = None
    try:
        with selectors.DefaultSelector() as selector:
            for pipe in captures:
                selector.register(pipe, selectors.EVENT_READ)
            pending = memoryview(bytes(stdin_bytes)) if stdin_bytes is not None else memoryview(b"")
            if proc.stdin is not None:
                if pending:
                    os.set_blocking(proc.stdin.fileno(), False)
                    selector.register(proc.stdin, selectors.EVENT_WRITE)
                else:
                    proc.stdin.close()
            deadline = start + limits.wall_seconds
            while not _has_exited(proc.pid):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _events in selector.select(min(remaining, _POLL_SECONDS)):
                    if key.fileobj is proc.stdin:
                        pending = _write_some(selector, proc, pending)
                    else:
                        _read_some(selector, key.fileobj, captures)
                if sum(c.total for c in captures.values()) > limits.output_kill_bytes:
                    flooded = True
                    break
            _kill_everything(proc.pid, user)
            usage = _reap(proc)
            if proc.stdin is not None and not proc.stdin.closed:  # the child died before reading it all
                selector.unregister(proc.stdin)
                proc.stdin.close()
            _drain(selector, captures, time.monotonic() + _DRAIN_SECONDS)
    finally:
        try:
            if proc.returncode is None:  # an exception interrupted the loop: never leave the child behind
                try:
                    _kill_everything(proc.pid, user)
                finally:
                    _reap(proc)
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            _remove_tree(private)
    out, err = captures[proc.stdout], captures[proc.stderr]
    return SandboxResult(
        argv=tuple(argv),
        limits=limits,
        returncode=proc.returncode,
        signal_name=_signal_name(proc.returncode),
        timed_out=timed_out,
        output_flooded=flooded,
        stdout=out.value(),
        stderr=err.value(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        wall_seconds=time.monotonic() - start,
        cpu_seconds=_cpu_seconds(usage),
        max_rss_bytes=_max_rss(usage),
    )


def _write_some(selector: selectors.BaseSelector, proc: subprocess.Popen[bytes], pending: memoryview) -> memoryview:
    assert proc.stdin is not None
    try:
        written = os.write(proc.stdin.fileno(), pending[:_WRITE_CHUNK])
    except BlockingIOError:
        written = 0
    except BrokenPipeError:  # the child stopped reading: the rest of the input is dropped
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(proc.stdin)
        proc.stdin.close()
    return pending


def _read_some(selector: selectors.BaseSelector, pipe: object, captures: dict[object, _Capture]) -> None:
    data = os.read(pipe.fileno(), _READ_CHUNK)  # type: ignore[attr-defined]
    if data:
        captures[pipe].feed(data)
    else:
        selector.unregister(pipe)


def _drain(selector: selectors.BaseSelector, captures: dict[object, _Capture], deadline: float) -> None:
    """Read what the dead child left in the pipes until EOF, or until deadline when a daemon outside our
    reach still holds a write end."""
    while any(pipe in captures for pipe in (key.fileobj for key in selector.get_map().values())):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for key, _events in selector.select(remaining):
            if key.fileobj in captures:
                _read_some(selector, key.fileobj, captures)


# ---------------------------------------------------------------- persistent workers


class SandboxProcess:
    """A long-lived sandboxed child (a persistent worker) with pipes for a request/response protocol.

    stdin and stdout are unbuffered binary pipes (so select() on stdout tells the truth); stdout carries
    the protocol and is not captured or capped here. stderr is drained by a background thread into a
    capped buffer (`stderr_bytes()`), so the child never blocks on it; more than
    `limits.output_kill_bytes` of stderr kills the child. `limits.wall_seconds` bounds the child's whole
    lifetime. Once the child is seen to exit (its stderr closes, or `poll()`/`wait()` notice), or `kill()` is
    called, its process group and (with a dedicated user) every process of that user are killed. Use it as
    a context manager, or call `close()`.
    """

    def __init__(self, proc: subprocess.Popen[bytes], private: Path, limits: Limits, user: SandboxUser | None) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self.pid: int = proc.pid
        self.stdin: BinaryIO = proc.stdin  # type: ignore[assignment]
        self.stdout: BinaryIO = proc.stdout  # type: ignore[assignment]
        self.workdir = private
        self.limits = limits
        self.user = user
        self._started = time.monotonic()
        self._ended: float | None = None
        self._usage: resource.struct_rusage | None = None
        self._timed_out = False
        self._flooded = False
        self._closed = False
        self._lock = threading.Lock()  # serialises reaping and killing across the caller and our threads
        self._stderr = _Capture(limits.output_bytes)
        self._stderr_lock = threading.Lock()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"sandbox-stderr-{proc.pid}", daemon=True
        )
        self._watchdog = threading.Timer(limits.wall_seconds, self._on_timeout)
        self._watchdog.daemon = True
        self._stderr_thread.start()
        self._watchdog.start()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    @property
    def output_flooded(self) -> bool:
        return self._flooded

    @property
    def cpu_seconds(self) -> float:
        return _cpu_seconds(self._usage)

    @property
    def wall_seconds(self) -> float:
        return (self._ended if self._ended is not None else time.monotonic()) - self._started

    def stderr_bytes(self) -> bytes:
        """What the child wrote to stderr so far, capped like `SandboxResult.stderr`."""
        with self._stderr_lock:
            return self._stderr.value()

    def poll(self) -> int | None:
        """The return code once the child has exited (its leftovers are then killed), else None."""
        with self._lock:
            if self._proc.returncode is None and _has_exited(self.pid):
                self._finish_locked()
            return self._proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit; raises subprocess.TimeoutExpired after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self._proc.args, timeout)  # type: ignore[arg-type]
            time.sleep(_POLL_SECONDS)
        return code

    def kill(self) -> int:
        """SIGKILL the process group (and the sandbox user's processes), reap the child; idempotent."""
        with self._lock:
            if self._proc.returncode is None:
                self._finish_locked()
            elif self.user is not None:
                kill_user_processes(self.user)
            return self._proc.returncode  # type: ignore[return-value]

    def close(self) -> None:
        """Kill the child if needed, close the pipes and remove the private directory."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        self._stderr_thread.join(_DRAIN_SECONDS)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        # Closing stderr under a thread still blocked in read() could let it read a reused descriptor;
        # that only happens when a daemon beyond our reach holds the pipe, and the thread then owns it.
        if not self._stderr_thread.is_alive() and self._proc.stderr is not None:
            self._proc.stderr.close()
        _remove_tree(self.workdir)

    def describe(self) -> str:
        """One line saying why the worker ended, or that it is still running."""
        code = self.poll()
        if code is None:
            return f"still running after {self.wall_seconds:.1f} s"
        return _describe(code, self._timed_out, self._flooded, self.limits, self.stderr_bytes(), self.cpu_seconds)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _finish_locked(self) -> None:
        _kill_everything(self.pid, self.user)
        self._usage = _reap(self._proc)
        self._ended = time.monotonic()
        self._watchdog.cancel()

    def _on_timeout(self) -> None:
        with self._lock:
            if self._proc.returncode is None:
                self._timed_out = not _has_exited(self.pid)  # it may have exited unobserved
                self._finish_locked()

    def _drain_stderr(self) -> None:
        fd = self._proc.stderr.fileno()  # type: ignore[union-attr]
        while data := os.read(fd, _READ_CHUNK):
            with self._stderr_lock:
                self._stderr.feed(data)
                flood = self._stderr.total > self.limits.output_kill_bytes and not self._flooded
            if flood:
                with self._lock:
                    if self._proc.returncode is None:
                        self._flooded = True
                        self._finish_locked()
        # EOF: usually the child died; clean up its leftovers now rather than at the next poll().
        self.poll()


def start_sandboxed(
    argv: list[str],
    limits: Limits,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: SandboxUser | None = None,
    confinement: Confinement | None = None,
) -> SandboxProcess:
    """Start a long-lived sandboxed child (a persistent worker) and return its handle.

    Same limits, environment, user switch and private directory as `run_sandboxed`; with `confinement`, inside
    namespaces that show it only the allowed paths (`autograder.worker.confinement`).
    """
    proc, private = _spawn(argv, limits, cwd=cwd, env=env, user=user, stdin_pipe=True, confinement=confinement)
    return SandboxProcess(proc, private, limits, user)
