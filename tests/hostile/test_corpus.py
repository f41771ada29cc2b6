"""The hostile submissions corpus: each submission graded through the real `run_autograder`, as Gradescope
runs it, in a temporary AUTOGRADER_ROOT laid out like /autograder, on the public suite.

Every case must end in a valid results.json (Gradescope's schema, `tests/results/test_schema.py`) that
lists the same tests as the reference's, within a generous subprocess timeout, with bounded output, and
with no score above what its honest parts earn:
- built on the student template (or unreadable): exactly the untouched template's score, 0;
- built on the reference: at most the reference's score, and the attacked component's tests fail with a
  message that says why.

Cases ("root": needs the grader to run as root, which runs student code as an unprivileged sandbox user;
skipped otherwise):
- untouched-template: 0 points, every test listed and failed with a reason. reference: full points.
- empty-file, binary-garbage, json-not-a-notebook, json-nested-too-deeply, nbformat-3: 0 points and a
  message naming the problem ("is empty", "is not a notebook", "not a Jupyter notebook", "nested too
  deeply", "format 3").
- symlink-to-reference: the submitted ps7.ipynb is a symbolic link to the reference notebook: 0 points,
  "symbolic link" (the grader, root on Gradescope, must not read files on the student's behalf).
- outputs-50mb: the reference with 50 MB of plot outputs: graded in bounded time, full points.
- malformed-cells: the reference with a syntax error in the Decoder cell, plus cells with a syntax error,
  too-deep nesting, `break` outside a loop, a NUL byte and 250,000 characters: each costs only itself
  ("cell skipped", "nested too deeply", "too long"); the Encoder is still graded and passes.
- loop-at-load: `while True: pass` in the Encoder class body: Encoder tests fail, "took longer than".
- loop-in-method: Encoder.forward never returns, under a grade deadline of 5 min (environment override): the
  first Encoder test fails with "did not finish within" after the worker's 120 s per-call timeout (no
  environment variable shortens it), the other Encoder tests fail at once with "did not finish" naming that
  call, every other component scores as the reference's, and the grade ends well within its deadline.
- grade-deadline: the same Encoder under a grade deadline of 45 s (shorter than the per-call timeout):
  run_autograder returns within the deadline plus a start-up margin, with a complete results file whose
  unfinished tests say "did not finish: the grade's time limit".
- sys-exit-at-load, os-exit-at-load: in the Encoder class body: Encoder tests fail ("sys.exit(0)", "stopped
  the process").
- sys-exit-in-method, os-exit-in-method, segfault (`ctypes.string_at(0)`), memory-hog (`numpy.zeros` of
  256 MiB without end), output-flood (100 MB printed, then raw writes to fds 1 and 2 without end), all in
  Encoder.forward: its test fails ("sys.exit(3)", "died", "SIGSEGV", "MemoryError", "of output").
- write-results: Encoder.__init__ overwrites $AUTOGRADER_ROOT/results/results.json and the guessed
  /autograder/results/results.json with a forged full score: the final file is the grader's; as root
  the write is refused (PermissionError).
- sleeper-outlives-grading (root): a detached process (own session, double fork, ignores SIGTERM/SIGHUP)
  started while loading logs its pid and tries to overwrite results.json every 0.25 s: it is dead when
  run_autograder returns (no log line after that), and results.json is the grader's.
- read-secrets (root): Encoder.__init__ reads a hidden suite, the suites folder, the prepared test labels,
  the raw test_y.bin, the solution source ps7.py, the reference notebook, the profile (thresholds) and, in a
  checkout, the git objects that hold the solution's history: every read is DENIED (PermissionError), nothing
  LEAKED.
- reference-internals (root): the Encoder subclasses the reference Encoder, reached through
  `autograder.assignment.namespace.reference_namespace` or among the worker's live objects (gc): 0 points.
- standard-parts-internals: `class Encoder(autograder.worker.standard.StandardEncoder)`, the grader's own
  correct encoder, reached through importlib: 0 points (the worker holds no standard part while the tests of the
  student's own parts run, and the file is masked or unreadable).
- renamed-module-subclass: the Decoder subclasses the standard one and renames its `__module__`: 0 points.
- standard-source-copy: standard.py's StandardEncoder pasted in as the Encoder: 0 points ("is a copy of").
- forged-observations: no Encoder, but a class body replaces the worker's `encoder_structure` probe with one
  returning the specified structure, reached through sys.modules: 0 points (the worker answers from the
  registry as it was before student code ran; an in-process guard only, see the README's security notes).
- probe-table-mutation: the same through the table the server consults (`_PROBES_AT_START`, changed in place),
  for the structure and the output shapes: 0 points (those tests also need a forward pass on weights and inputs
  the grader draws afresh to compute what the layers are).
- forged-training (full suite): no training code; the training probes are replaced in the server's table to
  answer with the untrained standard models' weights (Methods I, II) and with the pretrained backbone's features
  (CLIP): 0 points; the features are refused ("was refused"), the untrained weights score below the thresholds.
  The contract runs and Method III answer with the untrained weights of their seed and the data that used to
  pass them: the weights, judged in the trusted process, did not change or did not lower the loss. Method I
  answers with an untrained network of another seed (one of the many a forger could try for a lucky accuracy):
  its encoder is not kin to the initialisation the grader draws again from the run's seed.
- monkeypatch-comparisons: a wrong Encoder defined after setting torch, numpy and math comparison
  functions (allclose, equal, isclose, Tensor.__eq__, array_equal, assert_allclose, ...) to always succeed.
- pickle-payload: Encoder.forward returns a tensor look-alike whose `__reduce__` runs `os.system`: its test
  fails ("should return a tensor"), and the grader (the process with `--results` in its command line)
  never unpickled it.
- fork-bomb (root): starting processes without end while loading (each `sleep 3600`) stops at the
  process-count limit ("FORK-LIMIT"); no child survives grading.
- empty-wide-features (full suite): train_ae trains honestly, then adds `torch.empty(0, 10**8)` to the model it
  trained (no data, so no size limit sees it), whose weights the worker sends back: the answer is refused from
  its safetensors header ("was refused", "without its empty dimensions"), the Method I accuracy test fails with
  that message, and the grader survives to write a complete results file.
- message-bomb: a 5 MB exception message with a NUL byte, a lone surrogate and terminal escapes: valid,
  small results.

The cases are graded up front, a few at a time (each grade as root leases its own sandbox user), so the
corpus costs about its CPU time rather than the sum of its timeouts; each test then checks its own case.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.results.gradescope import from_markdown
from autograder.worker.confinement import unavailable_reason
from autograder.worker.deadline import DEADLINE_ENVIRONMENT
from tests.hostile import submissions as sub
from tests.results.test_schema import load_valid

SCRIPT = REPO_ROOT / "run_autograder"
IS_ROOT = os.geteuid() == 0
NOT_ROOT_REASON = (
    "needs the grader to run as root: only then does student code run as the unprivileged sandbox user, "
    "with the secrets, the results folder and the process-count limit out of its reach"
)
RUN_TIMEOUT = 300  # seconds for one run_autograder; one takes 10-60 s on 2 busy cores
LOOP_RUN_TIMEOUT = 600  # loop-in-method waits for the worker's per-call timeout (120 s, not configurable)
FULL_RUN_TIMEOUT = 900  # a full-suite grade trains (about 4 min on 2 busy cores)
LOOP_DEADLINE_SECONDS = 300
SHORT_DEADLINE_SECONDS = 45
DEADLINE_MARGIN_SECONDS = 90  # interpreter start, ingest and collection before the deadline starts, and teardown
# Most cases spend their time waiting (a worker's start, a call's or the grade's timeout) rather than computing,
# so more grades run at once than there are cores; each holds about 2 GB (grader and worker).
PARALLEL_GRADES = 4
MAX_RESULTS_BYTES = 2 * 1024**2
MAX_STDOUT_BYTES = 2 * 1024**2
ENCODER = "7.1.1"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # graded up front, once (`make test` splits by file)


@dataclass
class Root:
    """A temporary AUTOGRADER_ROOT, world-traversable like Gradescope's /autograder, with `drop`, a folder
    any user may write to, for the attacks' markers."""

    path: Path
    cache: Path

    @property
    def submission(self) -> Path:
        return self.path / "submission"

    @property
    def results(self) -> Path:
        return self.path / "results" / "results.json"

    @property
    def drop(self) -> Path:
        return self.path / "drop"

    @classmethod
    def make(cls, cache: Path, label: str) -> Root:
        folder = Path(tempfile.mkdtemp(prefix=f"ps7-hostile-{label}-"))
        folder.chmod(0o755)
        root = cls(folder, cache)
        root.submission.mkdir()
        root.drop.mkdir()
        root.drop.chmod(0o1777)
        return root

    def write(self, notebook: nbformat.NotebookNode, name: str = "ps7.ipynb") -> Path:
        path = self.submission / name
        nbformat.write(notebook, path)
        return path


@dataclass
class Graded:
    """What run_autograder did: its exit status, output, the results document and when it returned."""

    root: Root
    returncode: int
    stdout: bytes
    stderr: bytes
    document: dict[str, Any]
    ended: float
    started: float

    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.document["tests"]

    @property
    def score(self) -> float:
        return self.document["score"]

    @property
    def feedback(self) -> str:
        """What the student is shown: the top-level output and every test's output (as text: they are Markdown)."""
        texts = [self.document.get("output", ""), *(test.get("output", "") for test in self.tests)]
        return "\n".join(from_markdown(text) for text in texts)

    @property
    def printed(self) -> str:
        """run_autograder's stdout, which ends with what student code printed."""
        return self.stdout.decode("utf-8", errors="replace")

    def listing(self) -> list[tuple[str, str]]:
        return [(test.get("number", ""), test["name"]) for test in self.tests]

    def numbered(self, number: str) -> list[dict[str, Any]]:
        """The tests numbered `number` or `number.*`."""
        return [test for test in self.tests if (test.get("number", "") + ".").startswith(number + ".")]

    def summary(self) -> str:
        lines = [f"score {self.score}; output: {self.document.get('output', '')[:1500]}"]
        for test in self.tests:
            lines.append(f"{test.get('number')} {test['status']} {test['score']}: {test.get('output', '')[:300]}")
        return "\n".join(lines)


class RunFailed(Exception):
    """run_autograder did not finish in time, or left no results file."""


def run_autograder(root: Root, timeout: float = RUN_TIMEOUT, extra_env: dict[str, str] | None = None) -> Graded:
    """Run the real script on `root` (public suite), with `extra_env` added to its environment; past `timeout`
    kill what it started and raise."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTEST_ADDOPTS", DEADLINE_ENVIRONMENT)}
    env.update(AUTOGRADER_ROOT=str(root.path), PS7_CACHE=str(root.cache), AUTOGRADER_SUITE="public")
    env.update(extra_env or {})
    started = time.time()
    process = subprocess.Popen(
        [str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the grader; its sandbox user's processes die with its lease
        process.communicate()
        raise RunFailed(f"run_autograder did not finish within {timeout} s") from None
    ended = time.time()
    if not root.results.is_file():
        raise RunFailed(f"no results.json; stderr:\n{stderr.decode(errors='replace')[-3000:]}")
    return Graded(root, process.returncode, stdout, stderr, load_valid(root.results), ended, started)


def processes_mentioning(text: str) -> list[int]:
    """Live processes of the machine (in any PID namespace) whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """A hostile submission. `build` writes it into the root's submission folder. `base` says what its honest
    parts earn: "template" (or an unreadable file): exactly the untouched template's score, 0; "reference":
    at most the reference's score, with every test numbered `all_fail` or `all_fail.*` at 0 (an attack
    while loading costs the whole component) and at least one test numbered `some_fail.*` at 0 with the
    first of `messages` in its output (an attack in a method costs the tests that call it); exactly the
    reference's score when neither is given. `messages` must all appear in what the student is shown;
    `check` asserts what is particular to the case."""

    id: str
    build: Callable[[Root], None]
    base: str
    messages: tuple[str, ...] = ()
    all_fail: tuple[str, ...] = ()
    some_fail: str | None = None
    root_only: bool = False
    timeout: float = RUN_TIMEOUT
    check: Callable[[Graded], None] | None = None
    marks: tuple[Any, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # added to run_autograder's environment
    others_as_reference: bool = False  # the tests outside `all_fail` score exactly as the reference's
    full_suite: bool = False  # graded with every test (the baselines are public only: `check` judges it)


def _raw(content: bytes) -> Callable[[Root], None]:
    def build(root: Root) -> None:
        (root.submission / "ps7.ipynb").write_bytes(content)

    return build


def _notebook(make: Callable[[], nbformat.NotebookNode]) -> Callable[[Root], None]:
    def build(root: Root) -> None:
        root.write(make())

    return build


def _attacked_encoder(imports: str = "", class_body: str = "", forward: str = "") -> Callable[[Root], None]:
    """The reference with code added to its Encoder: in the class body (runs while loading) or at the start
    of forward (runs in a method)."""
    return _notebook(lambda: sub.with_reference_encoder(imports=imports, class_body=class_body, forward_prefix=forward))


def _nbformat3(root: Root) -> None:
    (root.submission / "ps7.ipynb").write_text(sub.nbformat3_notebook(), encoding="utf-8")


def _symlink(root: Root) -> None:
    (root.submission / "ps7.ipynb").symlink_to(REPO_ROOT / REFERENCE_NOTEBOOK)


def _outputs_50mb(root: Root) -> None:
    path = root.write(sub.with_outputs(sub.reference(), 50 * 1024**2))
    assert path.stat().st_size >= 50 * 1024**2


def _malformed(root: Root) -> None:
    notebook = sub.reference()
    decoder = notebook.cells[sub.code_cell_index(notebook, sub.DECODER_CELL)]
    decoder.source = decoder.source.replace("class Decoder(nn.Module):", "class Decoder(nn.Module)", 1)
    for source in sub.MALFORMED_CELLS:
        sub.add_cell(notebook, source)
    root.write(notebook)


def _check_malformed(graded: Graded) -> None:
    encoder = graded.numbered(ENCODER)
    assert encoder and all(test["status"] == "passed" for test in encoder), "the intact Encoder was not graded"
    assert graded.feedback.count("skipped") >= len(sub.MALFORMED_CELLS) + 1, graded.document["output"]


def _check_component_stopped(graded: Graded) -> None:
    encoder = graded.numbered(ENCODER)
    first, rest = encoder[0], encoder[1:]
    assert "did not finish within 120 s" in first["output"], graded.summary()
    assert rest and all("did not finish: an earlier test of 7.1.1 ran out of time" in t["output"] for t in rest)
    assert all("did not finish within 120 s" in test["output"] for test in rest), "the call that timed out is named"
    assert graded.ended - graded.started < LOOP_DEADLINE_SECONDS, "the rest of the component must fail at once"


def _others_score_as_the_reference(graded: Graded, reference: Graded, attacked: tuple[str, ...]) -> None:
    def others(run: Graded) -> float:
        hit = [test for number in attacked for test in run.numbered(number)]
        return sum(test["score"] for test in run.tests if test not in hit)

    assert others(graded) == pytest.approx(others(reference)), graded.summary()


def _check_grade_deadline(graded: Graded) -> None:
    assert graded.ended - graded.started <= SHORT_DEADLINE_SECONDS + DEADLINE_MARGIN_SECONDS, graded.summary()
    unfinished = [test for test in graded.tests if "the grade's time limit of 0.75 min was reached" in test["output"]]
    assert graded.numbered(ENCODER)[0] in unfinished, graded.summary()
    assert all(test["status"] == "failed" for test in unfinished)
    assert "did not run" not in graded.document["output"], "every test must have a verdict"


def _write_results(root: Root) -> None:
    paths = [str(root.results), "/autograder/results/results.json"]
    root.write(sub.with_encoder(sub.WRITE_RESULTS, paths=paths, forged=sub.FORGED_RESULTS))


def _check_write_results(graded: Graded) -> None:
    assert "WRITE REPORT" in graded.feedback, "the attack did not run"
    if IS_ROOT:
        assert "WROTE" not in graded.feedback
        blocked = [f"BLOCKED {graded.root.results} ({error})" for error in ("PermissionError", "FileNotFoundError")]
        assert any(text in graded.feedback for text in blocked), graded.feedback  # closed, or not there at all


def _sleeper(root: Root) -> None:
    marker, results = str(root.drop / "sleeper.log"), str(root.results)
    root.write(sub.with_encoder(sub.SLEEPER, marker=marker, results=results, forged=sub.FORGED_RESULTS))


def _check_sleeper(graded: Graded) -> None:
    """Without namespaces the sleeper logs into `drop`; in them `drop` is out of its sight, and survivors are
    found on the machine by their command line (the log's path is in it)."""
    time.sleep(max(0.0, graded.ended + 2 - time.time()))  # a survivor logs every 0.25 s
    log = graded.root.drop / "sleeper.log"
    assert "STARTED a sleeper" in graded.printed, "the sleeper never ran"
    survivors = processes_mentioning(str(log))
    assert not survivors, f"the sleeper survived grading: pids {survivors}"
    entries = [line.split() for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    if entries:
        assert max(float(when) for _, when in entries) < graded.ended, "the sleeper ran on after grading"
    assert sub.FORGED not in graded.root.results.read_text(encoding="utf-8")
    load_valid(graded.root.results)


def _another_students_notebook() -> Path:
    """A notebook of another student that every user could read, outside what the worker may see (in a root
    `batch`, the other submissions' folders)."""
    folder = Path(tempfile.gettempdir()) / "ps7-hostile-another-student"
    folder.mkdir(mode=0o755, exist_ok=True)
    notebook = folder / "ps7.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    notebook.chmod(0o644)
    return notebook


def _secrets(cache: Path) -> list[tuple[str, str]]:
    suites = REPO_ROOT / "autograder" / "suites"
    prepared = cache / "synthetic"
    secrets = [
        ("another student's notebook", _another_students_notebook()),
        ("hidden suite file", sorted(suites.glob("test_*.py"))[0]),
        ("suites folder", suites),
        ("prepared test labels", prepared / "tensors" / "stl10_labels.safetensors"),
        ("raw test_y.bin", prepared / "data" / "stl10" / "stl10_binary" / "test_y.bin"),
        ("solution source ps7.py", REPO_ROOT / "autograder" / "assignment" / "ps7.py"),
        ("reference notebook", REPO_ROOT / REFERENCE_NOTEBOOK),
        ("profile with thresholds", REPO_ROOT / "autograder" / "profiles" / "synthetic.json"),
    ]
    if (REPO_ROOT / ".git").is_dir():  # grading from a checkout: its history holds the solution
        secrets.append(("the checkout's git objects", REPO_ROOT / ".git" / "objects"))
    for label, path in secrets:
        assert path.exists(), f"{label}: {path} does not exist, so the case would prove nothing"
    return [(label, str(path)) for label, path in secrets]


def _read_secrets(root: Root) -> None:
    root.write(sub.with_encoder(sub.READ_SECRETS, secrets=_secrets(root.cache)))


def _check_read_secrets(graded: Graded) -> None:
    """Each secret is closed to the sandbox user, absent from the worker's namespaces, or masked as empty."""
    assert "READ REPORT" in graded.feedback, "the attack did not run"
    labels = [label for label, _ in _secrets(graded.root.cache)]
    leaked = [label for label in labels if f"LEAKED {label}" in graded.feedback]
    assert not leaked, f"the sandboxed student code could read: {', '.join(leaked)}"
    [report] = {line.split("READ REPORT: ", 1)[1] for line in graded.feedback.splitlines() if "READ REPORT: " in line}
    outcomes = set(report.split("; "))
    for label in labels:
        kept = {f"DENIED {label} (PermissionError)", f"DENIED {label} (FileNotFoundError)", f"EMPTY {label}"}
        assert kept & outcomes, f"{label}: {report}"


_LISTENERS: dict[str, socket.socket] = {}


def _exfiltrate(root: Root) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    _LISTENERS[str(root.path)] = listener
    root.write(sub.with_encoder(sub.EXFILTRATE, port=listener.getsockname()[1]))


def _check_exfiltrate(graded: Graded) -> None:
    """In its namespaces the worker has no network: not even the machine's loopback, where another grade's
    process could listen."""
    assert "EXFILTRATION REPORT" in graded.feedback, "the attack did not run"
    listener = _LISTENERS.pop(str(graded.root.path))
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        connection = None
    finally:
        listener.close()
    if connection is not None:
        connection.close()
    if unavailable_reason() is None:
        assert "NO NETWORK" in graded.feedback and connection is None, graded.feedback


def _check_no_leak(graded: Graded) -> None:
    assert "LEAKED" not in graded.feedback + graded.printed
    assert "DENIED" in graded.feedback, "the attack did not run"


def _check_patched(graded: Graded) -> None:
    assert "PATCHED" in graded.printed, "the monkeypatching class body did not run"


def _pickle(root: Root) -> None:
    log = root.drop / "unpickled-by.log"
    command = f"tr '\\000' ' ' < /proc/$PPID/cmdline >> {log}; echo >> {log}"
    root.write(sub.with_encoder(sub.PICKLE_PAYLOAD, base="reference", command=command))


def _check_pickle(graded: Graded) -> None:
    log = graded.root.drop / "unpickled-by.log"
    unpicklers = log.read_text(errors="replace").splitlines() if log.exists() else []
    assert not [line for line in unpicklers if "--results" in line], f"the grader unpickled it: {unpicklers}"


def _fork_tag(root: Root) -> str:
    """A `sleep` duration unique to this grade, so that its forked children can be found by command line."""
    return f"0.{abs(hash(str(root.path))) % 10**9:09d}"


def _fork_bomb(root: Root) -> None:
    root.write(sub.with_encoder(sub.FORK_BOMB, limit=1000, log=str(root.drop / "children.log"), tag=_fork_tag(root)))


def _check_fork_bomb(graded: Graded) -> None:
    assert "FORK-LIMIT" in graded.feedback and "FORK-UNLIMITED" not in graded.feedback, graded.summary()
    log = graded.root.drop / "children.log"
    children = [int(pid) for pid in log.read_text().split()] if log.exists() else []
    assert children or "FORK-LIMIT reached after 0 " not in graded.feedback, "no child was forked"
    survivors = [pid for pid in children if alive(pid)] + processes_mentioning(_fork_tag(graded.root))
    assert not survivors, f"{len(survivors)} forked children survived grading"


def _check_empty_wide_features(graded: Graded) -> None:
    [accuracy] = [test for test in graded.tests if test.get("number") == "7.1.3.3"]
    output = from_markdown(accuracy["output"])
    assert accuracy["score"] == 0 and "method1_weights` was refused" in output, graded.summary()
    assert "Not run" not in graded.feedback, "the grader must finish every test"
    assert graded.score > 0, "the honest parts still score"


def _check_forged_training(graded: Graded) -> None:
    assert graded.score == 0, graded.summary()
    [clip] = graded.numbered("7.2.2.6")
    assert "clip_training_weights` was refused" in from_markdown(clip["output"]), graded.summary()
    for number, reason in (
        ("7.1.3.3", "unrelated to that model's initial weights"),
        ("7.1.4.4", "below it"),
        ("7.1.3.1", "they had not changed at all"),
        ("7.1.4.1", "its weights did not change"),
        ("7.1.4.5", "its cross-entropy on the training images went from"),
    ):
        [test] = graded.numbered(number)
        assert test["score"] == 0 and reason in from_markdown(test["output"]), graded.summary()


def _check_bomb(graded: Graded) -> None:
    assert "BOMB" in graded.feedback, "the exception was not reported"


FLOOD = """
for _ in range(100):
    print("flood " * 175_000)
while True:
    os.write(1, b"x" * 2**20)
    os.write(2, b"y" * 2**20)
"""
HOG = "hog = []\nwhile True:\n    hog.append(numpy.zeros(2**28, dtype=numpy.uint8))\n"
SPIN = "while True:\n    pass\n"
SLEEP_FOREVER = "while True:\n    time.sleep(0.05)\n"
GARBAGE = b"\xff\xfe\x00PK\x03\x04" + bytes(range(256)) * 256

BASELINES = {
    "untouched-template": Case("untouched-template", _notebook(sub.template), "template"),
    "reference": Case("reference", _notebook(sub.reference), "reference"),
}
CASES = [
    Case("empty-file", _raw(b""), "template", ("is empty",)),
    Case("binary-garbage", _raw(GARBAGE), "template", ("is not a notebook",)),
    Case("json-not-a-notebook", _raw(b'{"hello": ["world"], "cells_": 3}'), "template", ("not a Jupyter notebook",)),
    Case("json-nested-too-deeply", _raw(b"[" * 200_000 + b"]" * 200_000), "template", ("nested too deeply",)),
    Case("nbformat-3", _nbformat3, "template", ("format 3",)),
    Case("symlink-to-reference", _symlink, "template", ("symbolic link",)),
    Case("outputs-50mb", _outputs_50mb, "reference"),
    Case(
        "malformed-cells",
        _malformed,
        "reference",
        ("cell skipped", "nested too deeply", "too long"),
        all_fail=("7.1.2",),
        check=_check_malformed,
    ),
    Case("loop-at-load", _attacked_encoder(class_body=SPIN), "reference", ("took longer than",), all_fail=(ENCODER,)),
    Case(
        "loop-in-method",
        _attacked_encoder("import time\n", forward=SLEEP_FOREVER),
        "reference",
        ("did not finish within",),
        all_fail=(ENCODER,),
        timeout=LOOP_RUN_TIMEOUT,
        check=_check_component_stopped,
        env=((DEADLINE_ENVIRONMENT, str(LOOP_DEADLINE_SECONDS)),),
        others_as_reference=True,
    ),
    Case(
        "grade-deadline",
        _attacked_encoder("import time\n", forward=SLEEP_FOREVER),
        "reference",
        ("did not finish: the grade's time limit",),
        all_fail=(ENCODER,),
        check=_check_grade_deadline,
        env=((DEADLINE_ENVIRONMENT, str(SHORT_DEADLINE_SECONDS)),),
    ),
    Case(
        "sys-exit-at-load",
        _attacked_encoder("import sys\n", class_body="sys.exit(0)\n"),
        "reference",
        ("sys.exit(0)",),
        all_fail=(ENCODER,),
    ),
    Case(
        "os-exit-at-load",
        _attacked_encoder("import os\n", class_body="os._exit(0)\n"),
        "reference",
        ("stopped the process",),
        all_fail=(ENCODER,),
    ),
    Case(
        "sys-exit-in-method",
        _attacked_encoder("import sys\n", forward="sys.exit(3)\n"),
        "reference",
        ("sys.exit(3)",),
        some_fail=ENCODER,
    ),
    Case(
        "os-exit-in-method",
        _attacked_encoder("import os\n", forward="os._exit(0)\n"),
        "reference",
        ("died",),
        some_fail=ENCODER,
    ),
    Case(
        "segfault",
        _attacked_encoder("import ctypes\n", forward="ctypes.string_at(0)\n"),
        "reference",
        ("died", "SIGSEGV"),
        some_fail=ENCODER,
    ),
    Case(
        "memory-hog", _attacked_encoder("import numpy\n", forward=HOG), "reference", ("MemoryError",), some_fail=ENCODER
    ),
    Case(
        "output-flood",
        _attacked_encoder("import os\n", forward=FLOOD),
        "reference",
        ("died", "of output"),
        some_fail=ENCODER,
    ),
    Case("write-results", _write_results, "template", check=_check_write_results),
    Case("sleeper-outlives-grading", _sleeper, "template", root_only=True, check=_check_sleeper),
    Case("read-secrets", _read_secrets, "template", root_only=True, check=_check_read_secrets),
    Case(
        "reference-internals",
        _notebook(lambda: sub.with_encoder(sub.REFERENCE_INTERNALS)),
        "template",
        root_only=True,
        check=_check_no_leak,
    ),
    Case(
        "standard-parts-internals",
        _notebook(lambda: sub.with_encoder(sub.STANDARD_PARTS)),
        "template",
    ),
    Case(
        "forged-observations",
        _notebook(lambda: sub.with_encoder(sub.FORGED_OBSERVATIONS)),
        "template",
    ),
    Case("renamed-module-subclass", _notebook(lambda: sub.with_decoder(sub.RENAMED_SUBCLASS)), "template"),
    Case(
        "standard-source-copy",
        _notebook(lambda: sub.with_encoder(sub.STANDARD_SOURCE_COPY)),
        "template",
        ("is a copy of the grader's own `StandardEncoder`",),
    ),
    Case("probe-table-mutation", _notebook(lambda: sub.with_encoder(sub.PROBE_TABLE_MUTATION)), "template"),
    Case(
        "forged-training",
        _notebook(lambda: sub.with_encoder(sub.FORGED_TRAINING)),
        "template",
        full_suite=True,
        timeout=FULL_RUN_TIMEOUT,
        check=_check_forged_training,
    ),
    Case(
        "monkeypatch-comparisons",
        _notebook(lambda: sub.with_encoder(sub.MONKEYPATCH)),
        "template",
        check=_check_patched,
    ),
    Case("pickle-payload", _pickle, "reference", ("should return a tensor",), some_fail=ENCODER, check=_check_pickle),
    Case("fork-bomb", _fork_bomb, "template", root_only=True, check=_check_fork_bomb),
    Case("exfiltrate-over-loopback", _exfiltrate, "template", check=_check_exfiltrate),
    Case(
        "empty-wide-features",
        _notebook(sub.with_empty_wide_features),
        "reference",
        ("was refused", "without its empty dimensions"),
        full_suite=True,
        timeout=FULL_RUN_TIMEOUT,
        check=_check_empty_wide_features,
    ),
    Case("message-bomb", _notebook(lambda: sub.with_encoder(sub.MESSAGE_BOMB)), "template", check=_check_bomb),
]


# ---------------------------------------------------------------- grading the corpus


@dataclass
class Outcome:
    graded: Graded | None = None
    error: BaseException | None = None

    def get(self) -> Graded:
        if self.error is not None:
            raise self.error
        assert self.graded is not None
        return self.graded


def _grade(case: Case, cache: Path, roots: list[Root]) -> Outcome:
    try:
        root = Root.make(cache, case.id)
        roots.append(root)
        case.build(root)
        env = {**dict(case.env), **({"AUTOGRADER_SUITE": "all"} if case.full_suite else {})}
        return Outcome(graded=run_autograder(root, case.timeout, env))
    except BaseException as error:  # noqa: BLE001 - reported by the case's own test
        return Outcome(error=error)


@pytest.fixture(scope="session")
def corpus(request: pytest.FixtureRequest, synthetic_cache: Path) -> Iterator[dict[str, Outcome]]:
    """Every selected case and both baselines, graded a few at a time, longest first."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    wanted = [*BASELINES.values(), *(case for case in CASES if case.id in selected)]
    wanted = [case for case in wanted if IS_ROOT or not case.root_only]
    wanted.sort(key=lambda case: -case.timeout)
    roots: list[Root] = []
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL_GRADES) as pool:
            futures = {case.id: pool.submit(_grade, case, synthetic_cache, roots) for case in wanted}
            yield {name: future.result() for name, future in futures.items()}
    finally:
        for root in roots:
            shutil.rmtree(root.path, ignore_errors=True)


def test_reference_scores_full(corpus: dict[str, Outcome]):
    reference = corpus["reference"].get()
    assert reference.returncode == 0 and reference.tests, reference.summary()
    failed = [test for test in reference.tests if test["status"] != "passed"]
    assert not failed and reference.score == pytest.approx(sum(t["max_score"] for t in reference.tests)), (
        reference.summary()
    )


def test_untouched_template_scores_zero_with_every_test_listed(corpus: dict[str, Outcome]):
    template, reference = corpus["untouched-template"].get(), corpus["reference"].get()
    assert template.returncode == 0 and template.score == 0, template.summary()
    assert template.listing() == reference.listing()
    for test in template.tests:
        assert test["status"] == "failed" and test["score"] == 0 and test.get("output", "").strip(), test


def _params() -> list[Any]:
    root_only = pytest.mark.skipif(not IS_ROOT, reason=NOT_ROOT_REASON)
    return [
        pytest.param(case, id=case.id, marks=[*case.marks, *([root_only] if case.root_only else [])]) for case in CASES
    ]


def _judge_against_baselines(case: Case, graded: Graded, template: Graded, reference: Graded) -> None:
    """No score above what the case's honest parts earn (see `Case`)."""
    if case.base == "template":
        assert graded.score == template.score == 0, graded.summary()
    else:
        assert graded.score <= reference.score, graded.summary()
        for number in case.all_fail:
            tests = graded.numbered(number)
            assert tests and all(test["score"] == 0 for test in tests), graded.summary()
        if case.some_fail is not None:
            failed = [test for test in graded.numbered(case.some_fail) if test["score"] == 0]
            assert any(case.messages[0] in test.get("output", "") for test in failed), graded.summary()
        if case.all_fail or case.some_fail:
            assert graded.score < reference.score, graded.summary()
        else:
            assert graded.score == reference.score, graded.summary()


@pytest.mark.parametrize("case", _params())
def test_hostile_submission(case: Case, corpus: dict[str, Outcome]):
    graded = corpus[case.id].get()
    template, reference = corpus["untouched-template"].get(), corpus["reference"].get()

    assert graded.returncode == 0, graded.stderr.decode(errors="replace")[-3000:]
    assert graded.root.results.stat().st_size <= MAX_RESULTS_BYTES, "results.json is not bounded"
    assert len(graded.stdout) <= MAX_STDOUT_BYTES, "run_autograder's output is not bounded"
    assert sub.FORGED not in graded.root.results.read_text(encoding="utf-8"), "results.json was forged"
    for message in case.messages:
        assert message in graded.feedback, f"expected {message!r} in the feedback:\n{graded.summary()}"
    if case.full_suite:
        assert case.check is not None, "a full-suite case is judged by its own check"
    else:
        assert graded.listing() == reference.listing(), "every submission must show the same test list"
        _judge_against_baselines(case, graded, template, reference)
    if case.check is not None:
        case.check(graded)
    if case.others_as_reference:
        _others_score_as_the_reference(graded, reference, case.all_fail)


def test_builders_find_the_cells_they_patch():
    """The builders patch cells by their first lines: they fail clearly when the notebooks change shape."""
    for notebook in (sub.template(), sub.reference()):
        sub.code_cell_index(notebook, sub.ENCODER_CELL)
        sub.code_cell_index(notebook, sub.DECODER_CELL)
    assert "while True" in sub.reference_encoder(forward_prefix=SPIN)
    wide = sub.with_empty_wide_features()
    assert "10**8" in wide.cells[sub.code_cell_index(wide, sub.TRAIN_AE_CELL)].source
    assert json.loads(sub.FORGED_RESULTS)["score"] == 10
    assert len(CASES) >= 24 and len({case.id for case in CASES}) == len(CASES)
