"""The sandbox primitive, exercised with real child processes (no mocks of the kernel's behaviour)."""

from __future__ import annotations

import errno
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.worker import spawn, users
from autograder.worker.limits import Limits
from autograder.worker.sandbox import start_sandboxed
from autograder.worker.users import SandboxUser, ensure_sandbox_user, kill_user_processes
from tests.worker.oneshot import run_sandboxed

MiB = 1024**2
FAST = Limits(wall_seconds=20, cpu_seconds=20, memory_bytes=1024 * MiB, output_bytes=1 * MiB)
TEST_USER = "ps7sbxtest"  # not the grader's user: killing "all its processes" must not hit anyone else's
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching users and RLIMIT_NPROC need root")


def py(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", code]


def alive(pid: int) -> bool:
    """A pid counts as alive unless it is gone or a zombie (our init may never reap orphans)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in ("Z", "X")


def gone_soon(pid: int, seconds: float = 3.0) -> bool:
    """SIGKILL is asynchronous: allow the kernel a moment to finish the process."""
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def private_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(spawn.PRIVATE_DIR_PREFIX)}


def test_normal_run_captures_both_streams():
    result = run_sandboxed(py("import sys; print('hello'); print('warn', file=sys.stderr)"), FAST)
    assert result.returncode == 0 and result.ok
    assert result.signal_name is None and not result.timed_out
    assert result.stdout == b"hello\n" and result.stderr == b"warn\n"
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.describe() == "exited normally (code 0)"
    assert 0 < result.wall_seconds < 10


def test_stdin_and_stdout_larger_than_pipe_buffers_do_not_deadlock():
    data = os.urandom(3 * MiB)
    echo = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    result = run_sandboxed(py(echo), Limits(wall_seconds=20, output_bytes=8 * MiB), stdin_bytes=data)
    assert result.returncode == 0
    assert result.stdout == data


@pytest.mark.parametrize("code, expected", [("import sys; sys.exit(7)", 7), ("import os; os._exit(3)", 3)])
def test_nonzero_exit(code, expected):
    result = run_sandboxed(py(code), FAST)
    assert result.returncode == expected and not result.ok
    assert result.signal_name is None
    assert result.describe() == f"exited with code {expected}"


def test_wall_timeout_kills_in_bounded_time():
    start = time.monotonic()
    result = run_sandboxed(py("print('started', flush=True)\nwhile True: pass"), Limits(wall_seconds=1.0))
    elapsed = time.monotonic() - start
    assert result.timed_out and result.signal_name == "SIGKILL"
    assert result.stdout == b"started\n"  # what was printed before the kill is kept
    assert result.describe() == "killed after 1 s wall-clock timeout"
    assert 1.0 <= elapsed < 5


def test_cpu_limit_kills_a_busy_loop():
    result = run_sandboxed(py("while True: pass"), Limits(wall_seconds=30, cpu_seconds=1))
    assert not result.timed_out
    assert result.signal_name in ("SIGXCPU", "SIGKILL")
    assert result.cpu_seconds >= 0.9
    assert result.describe().startswith("exceeded CPU-time limit of 1 s")


def test_memory_hog_fails_with_a_memory_description():
    hog = "chunks = [bytearray(64 * 1024 * 1024) for _ in range(32)]"  # 2 GiB against 512 MiB
    result = run_sandboxed(py(hog), Limits(wall_seconds=20, memory_bytes=512 * MiB))
    assert result.returncode == 1
    assert b"MemoryError" in result.stderr
    assert result.describe() == "exceeded memory limit of 512 MiB (exited with code 1)"
    # Linux carries the forking parent's peak RSS into the child's ru_maxrss (it is kept across exec), so the
    # bound is the limit plus this test process's own peak: a large pytest process must not make this flaky.
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert result.max_rss_bytes < 512 * MiB + parent_peak


def test_the_memory_limit_counts_private_memory_not_the_mappings_a_cuda_context_makes():
    """A CUDA context reserves address space without access rights and maps the device shared; an address-space
    limit broke its start-up. Under 512 MiB, a 64 GiB reservation and a 2 GiB shared mapping succeed, and
    1 GiB of writable private memory still fails."""
    code = (
        "import mmap\n"
        "reserved = mmap.mmap(-1, 64 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)\n"
        "shared = mmap.mmap(-1, 2 << 30, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)\n"
        "print('mapped', len(reserved) >> 30, len(shared) >> 30, flush=True)\n"
        "private = mmap.mmap(-1, 1 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n"
    )
    result = run_sandboxed(py(code), Limits(wall_seconds=20, memory_bytes=512 * MiB))
    assert result.stdout == b"mapped 64 2\n", result.stderr
    assert b"Cannot allocate memory" in result.stderr
    assert result.describe() == "exceeded memory limit of 512 MiB (exited with code 1)"


def test_output_flood_is_truncated_and_fast():
    flood = "import sys\nchunk = b'A' * (1 << 20)\nfor _ in range(200): sys.stdout.buffer.write(chunk)\nprint('END')"
    limits = Limits(wall_seconds=30, output_bytes=64 * 1024, output_kill_bytes=1024 * MiB)
    result = run_sandboxed(py(flood), limits)
    assert result.returncode == 0 and not result.output_flooded
    assert result.stdout_truncated
    total = 200 * MiB + len(b"END\n")
    marker = f"\n[... {total - 64 * 1024} bytes truncated]\n".encode()
    assert result.stdout == b"A" * (48 * 1024) + marker + b"A" * (16 * 1024 - 4) + b"END\n"
    assert result.wall_seconds < 15


def test_endless_output_is_killed_past_the_kill_threshold():
    flood = "import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"
    limits = Limits(wall_seconds=30, output_bytes=4096, output_kill_bytes=8 * MiB)
    result = run_sandboxed(py(flood), limits)
    assert result.output_flooded and not result.timed_out
    assert result.signal_name == "SIGKILL"
    assert result.describe() == "killed after writing more than 8 MiB of output"
    assert len(result.stdout) < 4096 + 100 and b"bytes truncated]" in result.stdout
    assert result.wall_seconds < 10


def test_segfault_is_reported_by_signal():
    result = run_sandboxed(py("import ctypes; ctypes.string_at(0)"), FAST)
    assert result.returncode == -signal.SIGSEGV
    assert result.signal_name == "SIGSEGV"
    assert result.describe() == "killed by SIGSEGV (segmentation fault)"


def test_file_size_limit_stops_a_large_write():
    writer = (
        "import os\n"
        "try:\n"
        "    with open('big.bin', 'wb') as f: f.write(b'x' * (2 * 1024 * 1024))\n"
        "except OSError as e:\n"
        "    print(e.errno, os.path.getsize('big.bin'), flush=True)\n"
        "    raise\n"
    )
    result = run_sandboxed(py(writer), Limits(wall_seconds=20, file_bytes=1 * MiB))
    assert result.stdout.split() == [str(errno.EFBIG).encode(), str(1 * MiB).encode()]
    assert result.returncode == 1
    assert result.describe() == "exceeded file-size limit of 1 MiB (exited with code 1)"


def test_grandchild_left_running_is_killed_after_the_call():
    # sleep inherits stdout: the call must not wait for its pipe to close.
    code = "import subprocess; p = subprocess.Popen(['sleep', '100']); print(p.pid)"
    result = run_sandboxed(py(code), FAST)
    assert result.returncode == 0
    assert result.wall_seconds < 5
    assert gone_soon(int(result.stdout))


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("PS7_SANDBOX_SECRET", "hunter2")
    code = "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))"
    result = run_sandboxed(py(code), FAST, env={"PS7_EXTRA": "1"})
    seen = json.loads(result.stdout)
    env = seen["env"]
    assert "PS7_SANDBOX_SECRET" not in env
    assert env["PS7_EXTRA"] == "1"
    assert env["HOME"] == env["TMPDIR"] == seen["cwd"]
    assert env["PYTHONHASHSEED"] == "0" and env["LC_ALL"] == "C.UTF-8"
    allowed = set(spawn.INHERITED_ENV) | set(spawn.FIXED_ENV) | {"HOME", "TMPDIR", "TMP", "TEMP", "PS7_EXTRA"}
    assert set(env) <= allowed


def test_bad_env_is_rejected_before_anything_starts():
    before = private_dirs()
    with pytest.raises(TypeError, match="env entries"):
        run_sandboxed(py("pass"), FAST, env={"N": 1})  # type: ignore[dict-item]
    assert private_dirs() - before == set()  # none left (another process may remove abandoned ones meanwhile)


def test_private_working_directory_is_0700_and_removed():
    code = (
        "import os\nopen('scratch.txt', 'w').write('x')\n"
        "print(os.getcwd(), oct(os.stat('.').st_mode & 0o777), oct(os.stat('scratch.txt').st_mode & 0o777))"
    )
    result = run_sandboxed(py(code), FAST)
    workdir, mode, file_mode = result.stdout.decode().split()
    assert mode == "0o700"
    assert file_mode == "0o600"  # umask 077: what the child writes is private too
    assert Path(workdir).name.startswith(spawn.PRIVATE_DIR_PREFIX)
    assert Path(workdir) != Path.cwd()
    assert not Path(workdir).exists()


def test_explicit_cwd_is_used_and_kept(tmp_path):
    code = "import os; open('out.txt', 'w').write('kept'); print(os.getcwd()); print(os.environ['HOME'])"
    result = run_sandboxed(py(code), FAST, cwd=tmp_path)
    cwd, home = result.stdout.decode().split()
    assert Path(cwd) == tmp_path
    assert (tmp_path / "out.txt").read_text() == "kept"
    assert home != cwd and not Path(home).exists()


def test_argument_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="non-empty list"):
        run_sandboxed([], FAST)
    with pytest.raises(NotADirectoryError, match="missing"):
        run_sandboxed(py("pass"), FAST, cwd=tmp_path / "missing")
    before = private_dirs()
    with pytest.raises(FileNotFoundError):
        run_sandboxed([str(tmp_path / "no-such-program")], FAST)
    assert private_dirs() - before == set()  # none left (another process may remove abandoned ones meanwhile)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"wall_seconds": 0}, "wall_seconds"),
        ({"cpu_seconds": -1}, "cpu_seconds"),
        ({"memory_bytes": 0}, "memory_bytes"),
        ({"output_bytes": 10, "output_kill_bytes": 5}, "output_kill_bytes"),
    ],
)
def test_invalid_limits_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Limits(**kwargs)


def test_persistent_worker_request_response():
    echo = (
        "import sys\n"
        "print('worker ready', file=sys.stderr)\n"
        "for line in sys.stdin:\n"
        "    sys.stdout.write(line.upper()); sys.stdout.flush()\n"
    )
    with start_sandboxed(py(echo), FAST) as worker:
        assert worker.workdir.is_dir()
        replies = []
        with worker.stdout as out:
            reader = iter(out.readline, b"")
            for word in (b"alpha\n", b"beta\n", b"gamma\n"):
                worker.stdin.write(word)
                replies.append(next(reader))
            worker.stdin.close()
            assert worker.wait(timeout=10) == 0
    assert replies == [b"ALPHA\n", b"BETA\n", b"GAMMA\n"]
    assert worker.stderr_bytes() == b"worker ready\n"
    assert worker.describe() == "exited normally (code 0)"
    assert not worker.workdir.exists()


def test_persistent_worker_lifetime_and_stderr_cap():
    # 1 MiB of stderr that nobody asks for must neither block the child nor be kept whole.
    code = "import sys, time\nsys.stderr.write('e' * (1 << 20))\nprint('ok', flush=True)\ntime.sleep(100)"
    limits = Limits(wall_seconds=1.5, output_bytes=4096)
    with start_sandboxed(py(code), limits) as worker:
        assert worker.stdout.readline() == b"ok\n"
        assert worker.poll() is None and worker.describe().startswith("still running")
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=0.1)
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert worker.timed_out
        assert worker.describe() == "killed after 1.5 s wall-clock timeout"
        captured = worker.stderr_bytes()
        assert f"[... {(1 << 20) - 4096} bytes truncated]".encode() in captured
        assert len(captured) < 4096 + 100


def test_persistent_worker_that_exits_on_its_own_is_not_a_timeout():
    with start_sandboxed(py("import os; os._exit(5)"), Limits(wall_seconds=0.5)) as worker:
        time.sleep(1.0)  # nobody polls: the stderr EOF and then the watchdog see the exit
        assert worker.returncode == 5
        assert not worker.timed_out
        assert worker.describe() == "exited with code 5"


def test_persistent_worker_kill_removes_its_helpers():
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '100']); print(p.pid, flush=True); sys.stdin.read()"
    worker = start_sandboxed(py(code), FAST)
    helper = int(worker.stdout.readline())
    assert alive(helper)
    worker.close()
    assert worker.returncode == -signal.SIGKILL
    assert gone_soon(helper)
    assert not worker.workdir.exists()


def test_no_user_without_root(monkeypatch):
    monkeypatch.setattr(spawn.os, "geteuid", lambda: 1000)
    assert ensure_sandbox_user(TEST_USER) is None
    with pytest.raises(PermissionError, match="needs root"):
        run_sandboxed(py("pass"), FAST, user=SandboxUser(TEST_USER, 12345, 12345))


def test_invalid_user_name_is_rejected():
    with pytest.raises(ValueError, match="invalid sandbox user name"):
        ensure_sandbox_user("Root; rm -rf /")


# ---------------------------------------------------------------- root only


@pytest.fixture(scope="module")
def user():
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    try:
        pwd.getpwnam(TEST_USER)
        existed = True
    except KeyError:
        existed = False
    created = ensure_sandbox_user(TEST_USER)
    assert created is not None
    yield created
    kill_user_processes(created)
    if not existed:
        subprocess.run(["userdel", TEST_USER], check=False, capture_output=True)


@pytest.fixture(scope="module")
def user_py(user):
    """Build argv for an interpreter the sandbox user can execute: ours may sit under a private home."""
    for candidate in (os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-I", "-S", "-c", "pass"], user=user.uid, group=user.gid, extra_groups=[], check=False
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return lambda code: [candidate, "-I", "-S", "-c", code]
    pytest.skip(f"no Python interpreter is executable by {user.name}")


@root_only
def test_private_interpreter_gives_a_clear_error(user, tmp_path):
    hidden = tmp_path / "bin"
    hidden.mkdir(mode=0o700)
    program = hidden / "tool"
    program.write_text("#!/bin/sh\necho hi\n")
    program.chmod(0o755)
    with pytest.raises(PermissionError, match=f"sandbox user {user.name} cannot use {program}"):
        run_sandboxed([str(program)], FAST, user=user)


@root_only
def test_ensure_sandbox_user_is_idempotent(user):
    again = ensure_sandbox_user(TEST_USER)
    entry = pwd.getpwnam(TEST_USER)
    assert again == user == SandboxUser(TEST_USER, entry.pw_uid, entry.pw_gid)
    assert user.uid != 0 and entry.pw_shell == "/usr/sbin/nologin"


@root_only
def test_user_switch_drops_all_privileges(user, user_py):
    code = "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups(), os.stat('.').st_uid)"
    result = run_sandboxed(user_py(code), FAST, user=user)
    assert result.returncode == 0, result.stderr
    u = user.uid
    g = user.gid
    assert result.stdout.decode().strip() == f"{u} {u} {g} {g} [] {u}"


@root_only
def test_user_cannot_read_a_root_only_file(user, user_py):
    shared = Path(tempfile.mkdtemp())
    try:
        os.chmod(shared, 0o755)
        secret, public = shared / "expected.json", shared / "public.txt"
        secret.write_text("answers")
        secret.chmod(0o600)
        public.write_text("visible")
        public.chmod(0o644)
        code = (
            "import sys\n"
            "print(open(sys.argv[2]).read())\n"
            "try:\n    open(sys.argv[1]).read()\nexcept PermissionError as e:\n    print(e.errno)\n"
        )
        result = run_sandboxed([*user_py(code), str(secret), str(public)], FAST, user=user)
    finally:
        for p in shared.iterdir():
            p.unlink()
        shared.rmdir()
    assert result.stdout.split() == [b"visible", str(errno.EACCES).encode()]


@root_only
def test_process_limit_stops_forking(user, user_py):
    code = (
        "import subprocess\n"
        "started = []\n"
        "try:\n"
        "    for _ in range(20): started.append(subprocess.Popen(['sleep', '100']).pid)\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "print(*started)\n"
    )
    result = run_sandboxed(user_py(code), Limits(wall_seconds=20, processes=6), user=user)
    first, pids = result.stdout.decode().splitlines()
    assert first == f"refused {errno.EAGAIN}"
    started = [int(p) for p in pids.split()]
    assert 0 < len(started) < 6
    assert not any(alive(p) for p in started)


@root_only
def test_daemon_that_left_the_group_is_killed_with_the_user(user, user_py):
    code = (
        "import os, subprocess\n"
        "p = subprocess.Popen(['sleep', '100'], start_new_session=True, stdout=subprocess.DEVNULL)\n"
        "print(p.pid, os.getpgid(p.pid), os.getpgid(0))\n"
    )
    result = run_sandboxed(user_py(code), FAST, user=user)
    daemon, daemon_group, own_group = map(int, result.stdout.split())
    assert daemon_group == daemon != own_group  # killpg of our group could not have reached it
    assert not alive(daemon)


@root_only
def test_kill_user_processes_kills_everything_of_that_user(user):
    procs = [
        subprocess.Popen(["sleep", "100"], user=user.uid, group=user.gid, extra_groups=[], start_new_session=True)
        for _ in range(2)
    ]
    bystander = subprocess.Popen(["sleep", "100"])
    try:
        assert kill_user_processes(user) == 2
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGKILL, -signal.SIGKILL]
        assert bystander.poll() is None
        assert kill_user_processes(user) == 0
    finally:
        bystander.kill()
        bystander.wait()


@root_only
def test_killed_processes_zombies_are_reaped_before_the_user_is_used_again(user, user_py):
    """A fork bomb's children, killed, linger as zombies until their adopter reaps them (this machine's init
    does so every second or two), and each still holds one of the user's RLIMIT_NPROC slots: a worker
    started at once could not create its threads (seen in CI: the next worker of a fork-bomb grade failed
    to load the notebook)."""
    leave_zombies = (
        "import os, time\n"
        "for _ in range(300):\n"
        "    if os.fork() == 0:\n"
        "        os._exit(0)\n"
        "print('forked', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        user_py(leave_zombies), user=user.uid, group=user.gid, extra_groups=[], stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout.readline() == b"forked\n"
        kill_user_processes(user)
        assert parent.wait(timeout=5) == -signal.SIGKILL
        assert users.unreaped_zombies(user) <= users.ZOMBIES_TOLERATED
        fork_many = (
            "import os, time\n"
            "count = 0\n"
            "try:\n"
            "    for _ in range(400):\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "        count += 1\n"
            "finally:\n"
            "    print(count, flush=True)\n"
        )
        result = run_sandboxed(user_py(fork_many), FAST, user=user)
        assert result.stdout.strip() == b"400", result.stderr
    finally:
        parent.kill()
        parent.wait()
        kill_user_processes(user)


@root_only
def test_kill_user_processes_refuses_root():
    with pytest.raises(ValueError, match="refusing"):
        kill_user_processes(SandboxUser("root", 0, 0))
