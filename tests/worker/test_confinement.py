"""The worker's namespaces (bubblewrap): it sees only what is allowed, masked secrets are empty, it has no
network, its /tmp and /dev/shm are its own, and nothing it starts outlives it. Real bwrap, real processes.

The tests need bubblewrap (CI installs Debian's `bubblewrap`; `.ci/run` does it where it is missing) and a
kernel that lets it create namespaces; where it cannot, they are skipped with the reason, and the grader
itself falls back to uid separation with a loud warning on its log (`Worker._confinement`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.ingest.extract import extract
from autograder.worker.client import Worker
from autograder.worker.confinement import Confinement, unavailable_reason
from autograder.worker.limits import Limits
from tests.worker.oneshot import run_sandboxed

PROBLEM = unavailable_reason()
needs_namespaces = pytest.mark.skipif(PROBLEM is not None, reason=f"no namespaces here: {PROBLEM}")
LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=None)
PYTHON_TREES = (Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent)


@pytest.fixture
def tree():
    """A folder every user can reach (pytest's own temporary folders are owner-only), with an allowed part, a
    secret inside it, and a folder that is not allowed at all."""
    root = Path(tempfile.mkdtemp(prefix="ps7-confine-"))
    root.chmod(0o755)
    (root / "allowed" / "hidden").mkdir(parents=True)
    (root / "outside").mkdir()
    (root / "allowed" / "open.txt").write_text("open")
    (root / "allowed" / "secret.txt").write_text("the solution")
    (root / "allowed" / "hidden" / "labels.bin").write_text("labels")
    (root / "outside" / "other.txt").write_text("another student's notebook")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root)


def _python(code: str, confinement: Confinement):
    return run_sandboxed([sys.executable, "-I", "-c", code], LIMITS, confinement=confinement)


@needs_namespaces
def test_only_allowed_paths_are_visible_and_masked_secrets_are_empty(tree):
    allowed = tree / "allowed"
    confinement = Confinement(
        readable=(*PYTHON_TREES, allowed), hidden=(allowed / "secret.txt", allowed / "hidden")
    )
    code = (
        "import os, sys\n"
        f"print(open({str(allowed / 'open.txt')!r}).read())\n"
        f"print(repr(open({str(allowed / 'secret.txt')!r}).read()))\n"
        f"print(os.listdir({str(allowed / 'hidden')!r}))\n"
        f"print(os.path.exists({str(tree / 'outside' / 'other.txt')!r}))\n"
        f"try:\n    open({str(allowed / 'new.txt')!r}, 'w')\nexcept OSError as e:\n    print('read-only', e.errno)\n"
    )
    result = _python(code, confinement)
    assert result.returncode == 0, result.stderr_text
    assert result.stdout.decode().split("\n")[:5] == ["open", "''", "[]", "False", "read-only 30"]


@needs_namespaces
def test_no_network_not_even_to_the_graders_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (
            "import socket\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n    print('connected')\n"
            "except OSError as e:\n    print('refused', type(e).__name__)\n"
        )
        result = _python(code, Confinement(readable=PYTHON_TREES))
    finally:
        server.close()
    assert result.stdout.decode().startswith("refused"), result.stdout


@needs_namespaces
def test_private_tmp_and_shm_vanish_and_a_daemon_dies_with_the_call():
    marker = f"ps7-confine-{os.getpid()}-{time.monotonic_ns()}"
    code = (
        "import os, subprocess\n"
        f"open('/tmp/{marker}', 'w').write('x')\n"
        f"open('/dev/shm/{marker}', 'w').write('x')\n"
        "subprocess.Popen(['sleep', '4321'], start_new_session=True)\n"
        "print(os.getpid())\n"
    )
    result = _python(code, Confinement(readable=PYTHON_TREES))
    assert result.returncode == 0, result.stderr_text
    assert result.stdout.decode().strip() != ""
    assert not Path("/tmp", marker).exists() and not Path("/dev/shm", marker).exists()
    time.sleep(0.5)
    survivors = subprocess.run(["pgrep", "-f", "^sleep 4321$"], capture_output=True, text=True).stdout.split()
    assert survivors == [], f"a process started in the sandbox outlived it: {survivors}"


_PEEK = '''
class Peek:
    """Loading this class reads the solution and the checkout's history, and reports what it found."""
    import os
    found = {{
        "solution": open({solution!r}).read()[:40] if os.path.exists({solution!r}) else "missing",
        "git": os.path.exists({git!r}),
        "suites": sorted(os.listdir({suites!r})) if os.path.exists({suites!r}) else "missing",
    }}
    raise RuntimeError(repr(found))
'''


@needs_namespaces
def test_a_worker_cannot_read_the_solution_the_hidden_suites_or_git(synthetic):
    from autograder.assignment.source import PACKAGE_ROOT, SOURCE_FILE

    peek = _PEEK.format(
        solution=str(SOURCE_FILE), git=str(PACKAGE_ROOT.parent / ".git"), suites=str(PACKAGE_ROOT / "suites")
    )
    with Worker(extract([peek]), profile=synthetic.name) as worker:
        worker.start()
        reported = worker.load_errors["Peek"]
        assert "namespaces" in worker.isolation
    assert "{'solution': '', 'git': False, 'suites': []}" in reported, reported


def test_a_worker_told_not_to_confine_says_so(synthetic):
    with Worker(extract(["X = 1"]), profile=synthetic.name, confine=False) as worker:
        worker.start()
        assert "namespaces" not in worker.isolation and worker.loaded == ["X"]
