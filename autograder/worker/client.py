"""The trusted side of the worker: start it in the sandbox, send it calls, survive whatever it does.

`Worker(submission).call("encoder_structure")` returns an `Observation`. A call that
times out, kills the worker, or answers with something unreadable fails with a clear message, and the
next call starts a fresh worker. What is loaded comes from `autograder.ingest.dependencies.load_plan`: the
provided code, then each student part (the imports, every definition, the statements graded definitions
need) in a request of its own, sent once the previous one is answered, so the client knows from its own
records which part was in flight. A part that kills or hangs the worker while loading is left out of the
next worker's load (recorded as that part's load error, and the names it binds as unavailable), so it
costs only what depends on it.

Over 400 lines on purpose: one class, `Worker`, whose methods share one worker's life (start, load, call, restart).
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autograder.assignment.source import PACKAGE_ROOT, REPO_ROOT, provided_code
from autograder.ingest.dependencies import LoadPlan, load_plan
from autograder.ingest.extract import Submission
from autograder.profiles.profile import cache_root, load_profile, worker_copy
from autograder.worker.access import (
    STANDARD_FILE,
    SandboxLease,
    exposed_originals,
    grant_sandbox_access,
    grant_tree_access,
    secret_paths,
    withhold_from_sandbox,
)
from autograder.worker.confinement import Confinement, unavailable_reason
from autograder.worker.deadline import Deadline
from autograder.worker.leftovers import make_folder
from autograder.worker.limits import Limits
from autograder.worker.protocol import (
    MAX_RESPONSE_BYTES,
    Observation,
    ProtocolError,
    TensorSpec,
    announced_bytes,
    decode_message,
    encode_message,
    load_report,
    observation_from_response,
    response_limit,
    truncate,
)
from autograder.worker.sandbox import SandboxProcess, start_sandboxed
from autograder.worker.users import SandboxUser, kill_user_processes

DEFAULT_LIMITS = Limits(wall_seconds=3600.0, cpu_seconds=3600)
_BOOTSTRAP = "import sys; sys.path.insert(0, {root!r}); from autograder.worker.server import main; main()"
_READ_CHUNK = 1024**2
_MAX_LOAD_ATTEMPTS = 8
_PART_GRACE_SECONDS = 10.0  # beyond the worker's own timer, before the client gives up on a part
PROFILE_COPY_PREFIX = "ps7-worker-profile-"  # + the grader's pid + "-" (`worker/leftovers.py`)
IMPORTS_PART = "(imports)"
# The probes of the student's own Encoder, Decoder and ProjectionHead, which the standard parts would answer: they
# run only in a worker that never held them.
OWN_PART_PROBES = frozenset(
    {
        "module_structure",
        "encoder_structure",
        "decoder_structure",
        "forward_shape",
        "forward_with_weights",
        "projection_head_structure",
        "projection_head_output",
    }
)


class WorkerError(RuntimeError):
    """The worker cannot be started at all (a grader problem, not the student's)."""


class DeadlineReached(WorkerError):
    """The grade-wide deadline passed while waiting for the worker (not a timeout of one call or definition:
    nothing is blamed on the part that was loading)."""


LIBRARY_FOLDERS = ("site-packages", "dist-packages")


def _library_paths() -> list[Path]:
    """The library folders of this interpreter's path (its own site-packages, and others that `.pth` files add),
    which the worker's interpreter needs too. Only those: other entries (a script's folder, the checkout, a
    test's temporary folder) would show the worker what it must not see, or be closed to the sandbox user."""
    found = []
    for entry in sys.path:
        path = Path(entry).resolve() if entry else None
        if path is not None and path.name in LIBRARY_FOLDERS and path.is_dir():
            found.append(path)
    return found


def _interpreter() -> str:
    """This interpreter, through the real path of its folder but under its own name: a virtual
    environment's `bin/python` must keep its name to find the environment, while the folders it was
    reached through (a symlinked checkout in a private temporary folder) may be closed to the sandbox user."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


class Worker:
    """A sandboxed worker holding the provided code and (optionally) a submission's definitions.

    `submission` None loads only the provided code. `user` "auto" runs the worker as
    the sandbox user when the grader is root (creating the user, making the interpreter, package and
    cache reachable, and withholding the secrets of `access.secret_paths` and `private_paths`) and as the
    current user otherwise; None never switches users.
    """

    def __init__(
        self,
        submission: Submission | None = None,
        *,
        profile: str = "synthetic",
        limits: Limits = DEFAULT_LIMITS,
        call_timeout: float = 120.0,
        load_timeout: float = 180.0,
        definition_timeout: float = 20.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        user: SandboxUser | str | None = "auto",
        private_paths: list[Path] | None = None,
        confine: bool = True,
        deadline: Deadline | None = None,
    ) -> None:
        self.profile = profile
        self.deadline = deadline
        self.limits = limits
        self.call_timeout = call_timeout
        self.load_timeout = load_timeout
        self.definition_timeout = definition_timeout
        self.max_response_bytes = max_response_bytes
        self._plan(submission)
        self._user_choice = user
        self.private_paths = list(private_paths or [])
        self._confine = confine
        self.confinement_problem: str | None = None  # why the worker runs without namespaces, once tried
        self._profile_file: Path | None = None
        self._user: SandboxUser | None = None
        self._lease: SandboxLease | None = None
        self._user_ready = False
        self._proc: SandboxProcess | None = None
        self._pending_load: int | None = None  # the id of a load request sent and not yet answered
        self._standard_given = False  # whether this worker process holds the standard parts
        self._load_deadline = 0.0
        self._buffer = bytearray()
        self._next_id = 0
        self._crashed: dict[str, str] = {}
        self._start_error: str | None = None
        self.load_errors: dict[str, str] = {}
        self.import_errors: list[list[str]] = []
        self.loaded: list[str] = []
        self.starts = 0
        self.stdout_log: list[str] = []
        self.timeouts: list[str] = []  # what each call that ran out of time was, in the order it happened

    def _plan(self, submission: Submission | None) -> None:
        self.plan = load_plan(submission) if submission is not None else LoadPlan("", [])
        imports = {"name": IMPORTS_PART, "source": self.plan.imports, "filename": "<cell imports>", "lineno": 1}
        self._parts = [{**imports, "binds": [], "label": "your imports"}] if self.plan.imports else []
        self._parts += [part.request() for part in self.plan.parts]
        self.notes = list(self.plan.notes)
        self._unavailable: dict[str, str] = dict(self.plan.not_run)  # names no loaded part binds -> why

    # ------------------------------------------------------------------ public
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def assign(self, submission: Submission, deadline: Deadline | None = None) -> None:
        """Give a worker begun without a submission (a spare, started ahead so that its imports are done) the
        submission it is to load, and the grade's deadline. Its launch loaded only the provided code, so it is
        then the worker `Worker(submission)` would have begun; refused once any student part has been sent."""
        loaded = self._proc is not None and self._pending_load is None
        if loaded or self.plan.parts or self.plan.imports or self.starts > 1:
            raise WorkerError("internal grader error: a worker is assigned a submission only before it loads one")
        self._plan(submission)
        self.deadline = deadline

    def begin(self) -> None:
        """Start a worker loading in the background, so that its imports (seconds) overlap the grader's own
        work; the next `start` or `call` waits for it. A failure to start is reported by that call."""
        if self.alive or self._start_error is not None:
            return
        try:
            self._launch()
        except WorkerError as error:
            self._start_error = str(error)

    def start(self) -> None:
        """Start a fresh worker and load the namespaces, unless one is running. Raises WorkerError when the
        worker cannot load even the provided code."""
        if self.alive and self._pending_load is None:
            return
        if self._start_error is not None:
            raise WorkerError(self._start_error)
        try:
            for _ in range(_MAX_LOAD_ATTEMPTS):
                if self.deadline is not None and self.deadline.expired:
                    raise DeadlineReached(self.deadline.message)
                if self._pending_load is None:
                    self._launch()
                if self._finish_load():
                    return
            raise WorkerError(f"the worker could not load the submission after {_MAX_LOAD_ATTEMPTS} attempts")
        except WorkerError as error:
            self._discard()
            self._start_error = str(error)  # the same failure again for every later call, without a retry
            raise

    def call(
        self, probe: str, *, timeout: float | None = None, expect: dict[str, TensorSpec] | None = None, **args: Any
    ) -> Observation:
        """Run a probe in the worker; any failure of the worker becomes a failed Observation. The call waits
        at most its own timeout and never past the grade's deadline; a successful answer must carry the tensors
        of `expect`, of the shapes and dtypes it gives (checked before they are decoded), and its tensors may take
        at most `protocol.response_limit(expect)` bytes: a call whose answer is larger than `max_response_bytes`
        (features of the real test set, ResNet50's weights) declares the tensors it expects.

        The probes of `OWN_PART_PROBES` run only in a worker that never held the standard parts (a fresh one when
        this one has them: the suites run those tests first, so a grade pays no restart); every other probe
        gets them first (`_give_standard_parts`)."""
        if probe in OWN_PART_PROBES and self._standard_given:
            self._discard()
        try:
            self.start()
        except DeadlineReached as error:
            return Observation.failure(str(error))
        except WorkerError as error:
            return Observation.failure(f"the grader could not start the worker that runs your code: {error}")
        problem = None if probe in OWN_PART_PROBES else self._give_standard_parts()
        if problem is not None:
            return Observation.failure(problem)
        limit = self.call_timeout if timeout is None else timeout
        tensor_limit = response_limit(expect, self.max_response_bytes)
        request_id = self._send({"op": "call", "probe": probe, "args": args})
        try:
            message, payload = self._receive(request_id, time.monotonic() + limit, tensor_limit)
        except DeadlineReached as error:
            self._discard()
            self.timeouts.append(f"`{probe}` was running when the grade's time limit was reached")
            return Observation.failure(f"{error} while `{probe}` was running")
        except TimeoutError:
            self._discard()
            self.timeouts.append(f"`{probe}` did not finish within {limit:g} s")
            return Observation.failure(
                f"`{probe}` did not finish within {limit:g} s and was stopped: your code may loop forever "
                "or be far too slow"
            )
        except EOFError:
            reason = self._death()
            return Observation.failure(f"the process running your code died during `{probe}`: {reason}")
        except ProtocolError as error:
            self._discard()
            return Observation.failure(f"the worker's answer to `{probe}` was refused: {error}")
        except BaseException:  # a test's own time limit (pytest-timeout) mid-answer: the stream is out of step
            self._discard()
            raise
        try:
            observation = observation_from_response(message, tensor_limit, expect, payload)
        except ProtocolError as error:
            self._discard()
            return Observation.failure(f"the worker's answer to `{probe}` was refused: {error}")
        if observation.stdout:
            self.stdout_log.append(f"[{probe}] {observation.stdout}")
        return observation

    def close(self) -> None:
        """Stop the worker and every process left by the sandbox user."""
        self._discard()
        if self._lease is not None:
            self._lease.release()
            self._lease, self._user, self._user_ready = None, None, False
        elif self._user is not None:
            kill_user_processes(self._user)
        if self._profile_file is not None:
            shutil.rmtree(self._profile_file.parent, ignore_errors=True)
            self._profile_file = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ starting
    def _sandbox_user(self) -> SandboxUser | None:
        if self._user_ready:
            return self._user
        choice = self._user_choice
        if isinstance(choice, SandboxUser):
            self._user = choice
        elif choice == "auto" and os.geteuid() == 0:
            self._lease = SandboxLease()
            self._user = self._lease.user
        if self._user is not None:
            profile = load_profile(self.profile)
            paths = [Path(_interpreter()), Path(sys.prefix), Path(sys.base_prefix), REPO_ROOT]
            self.notes.extend(grant_sandbox_access([*paths, profile.cache_dir(), self._profile_copy().parent]))
            self.notes.extend(grant_tree_access(profile.cache_dir()))
            self.notes.extend(withhold_from_sandbox([*secret_paths(profile), *self.private_paths]))
            for warning in exposed_originals(profile):
                print(warning, file=sys.stderr)
        self._user_ready = True
        return self._user

    def _confinement(self, user: SandboxUser | None) -> Confinement | None:
        """The namespaces the worker runs in: only the runtime, the package and the prepared profile visible, the
        secrets among them masked. None where bubblewrap cannot build them, with a loud warning (once) when the
        grader is root, i.e. grades other people's code (Gradescope); an ordinary user is refused full grading
        without them (`autograder.worker.isolation`), and a student checking their own notebook needs none."""
        if not self._confine:
            return None
        problem = unavailable_reason(*((user.uid, user.gid) if user is not None else (None, None)))
        if problem is not None:
            if self.confinement_problem is None and user is not None:
                print(
                    f"WARNING: student code runs WITHOUT namespace isolation: {problem}. Only the separate sandbox "
                    f"user {user.name} keeps it from the grader's files.",
                    file=sys.stderr,
                )
            self.confinement_problem = problem
            return None
        profile = load_profile(self.profile)
        runtime = [Path(_interpreter()).parent, Path(sys.prefix), Path(sys.base_prefix), *_library_paths()]
        readable = (*runtime, PACKAGE_ROOT, profile.cache_dir(), self._profile_copy().parent)
        return Confinement(readable=readable, hidden=tuple([*secret_paths(profile), *self.private_paths]))

    @property
    def isolation(self) -> str:
        """How the running (or last) worker was kept apart from the grader, in words for the grading log."""
        parts = []
        if self._proc is not None or self.starts:
            if self._confine and self.confinement_problem is None:
                parts.append("namespaces")
            if self._user is not None:
                parts.append(f"sandbox user {self._user.name}")
        return " + ".join(parts) or "none (same user, no namespaces)"

    def _profile_copy(self) -> Path:
        """The profile the worker reads: a copy without thresholds, in a folder of its own."""
        if self._profile_file is None:
            folder = make_folder(PROFILE_COPY_PREFIX)
            folder.chmod(0o755)
            self._profile_file = worker_copy(load_profile(self.profile), folder)
            self._profile_file.chmod(0o644)
        return self._profile_file

    def _launch(self) -> None:
        """Start a worker process and send it the load request, without waiting for the answer."""
        self._discard()
        user = self._sandbox_user()
        profile = str(self._profile_copy())
        env = {"PS7_PROFILE": profile, "PS7_CACHE": str(cache_root())}
        env["PS7_WORKER_MAX_RESPONSE"] = str(self.max_response_bytes)
        # No progress bars or advisories in what the student reads: tqdm's, and transformers' "Loading weights".
        env.update(
            TQDM_DISABLE="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            TRANSFORMERS_VERBOSITY="error",
            TRANSFORMERS_NO_ADVISORY_WARNINGS="1",
        )
        argv = [_interpreter(), "-I", "-c", _BOOTSTRAP.format(root=str(REPO_ROOT))]
        try:
            self._proc = start_sandboxed(argv, self.limits, env=env, user=user, confinement=self._confinement(user))
        except OSError as error:
            raise WorkerError(f"cannot start {argv[0]}: {error}") from error
        self.starts += 1
        self._buffer.clear()
        self._pending_load = self._send(
            {
                "op": "load",
                "profile": profile,
                "provided": provided_code(),
                "definition_timeout": self.definition_timeout,
                "known_errors": self._crashed,
            }
        )
        self._load_deadline = time.monotonic() + self.load_timeout

    def _finish_load(self) -> bool:
        """Wait for the launched worker's load; False when a student part killed or hung it (it is then
        excluded from the next attempt)."""
        request_id, self._pending_load = self._pending_load, None
        assert request_id is not None
        current: list[dict[str, Any] | None] = [None]  # the part in flight, from our own records
        try:
            message, payload = self._receive(request_id, self._load_deadline, self.max_response_bytes)
            observation = observation_from_response(message, self.max_response_bytes, payload=payload)
            if observation.ok:
                loaded, errors, import_errors = self._load_parts(current)
        except (TimeoutError, EOFError, ProtocolError) as error:
            reason = (
                f"loading took longer than {self.load_timeout:g} s"
                if isinstance(error, TimeoutError)
                else self._death()
                if isinstance(error, EOFError)
                else str(error)
            )
            self._discard()
            culprit = current[0]
            if culprit is None or culprit["name"] in self._crashed:
                raise WorkerError(f"the worker failed while loading the provided code: {reason}") from None
            self._crashed[culprit["name"]] = f"loading it stopped the process running your code ({reason})"
            for name in culprit["binds"]:
                self._unavailable.setdefault(
                    name, f"`{name}` is bound by {culprit['label']}, which stopped the process running your code "
                    f"when the grader ran it ({reason})"
                )
            return False
        if not observation.ok:
            self._discard()
            raise WorkerError(observation.message)
        self.loaded = loaded
        self.load_errors = {**errors, **self._crashed}
        self.import_errors = import_errors
        if observation.stdout:
            self.stdout_log.append(f"[load] {observation.stdout}")
        return True

    def _load_parts(self, current: list[dict[str, Any] | None]) -> tuple[list[str], dict[str, str], list[Any]]:
        """Send the parts one request at a time, each once the previous one is answered, so that `current`
        holds the part in flight; each gets the worker's own time budget plus a grace period."""
        loaded: list[str] = []
        errors: dict[str, str] = {}
        import_errors: list[Any] = []
        if self._unavailable:
            self._load_request({"op": "unavailable", "names": self._unavailable}, self._load_deadline)
        for part in self._parts:
            if part["name"] in self._crashed:
                continue
            current[0] = part
            deadline = min(self._load_deadline, time.monotonic() + self.definition_timeout + _PART_GRACE_SECONDS)
            answer = self._load_request({"op": "define", **part}, deadline)
            if answer.stdout:
                self.stdout_log.append(f"[load {part['label']}] {answer.stdout}")
            error = answer.data.get("error")
            # Every field checked: a malformed answer is refused, and counts as this part's failure.
            failed = {part["name"]: error} if error else {}
            report = load_report({"errors": failed, "import_errors": answer.data.get("import_errors", [])})
            errors.update(report.errors)
            if not error and part["name"] != IMPORTS_PART:
                loaded.append(part["name"])
            import_errors.extend(report.import_errors)
        current[0] = None
        return loaded, errors, import_errors

    def _load_request(self, message: dict[str, Any], deadline: float) -> Observation:
        """One request of the load, answered by `deadline`; an answer that is not ok ends the load."""
        request_id = self._send(message)
        response, payload = self._receive(request_id, deadline, self.max_response_bytes)
        answer = observation_from_response(response, self.max_response_bytes, payload=payload)
        if not answer.ok:
            raise ProtocolError(answer.message)
        return answer

    def _death(self) -> str:
        """Why the worker ended, after making sure it has (its pipe closed), then forget it."""
        proc = self._proc
        if proc is None:
            return "it was stopped"
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # still alive after closing its stdout: kill it and say so
            proc.kill()
        reason = proc.describe()
        tail = proc.stderr_bytes().decode("utf-8", errors="replace").strip()
        if tail:
            self.stdout_log.append(f"[worker stderr] {truncate(tail, 4000)}")
        self._discard()
        return reason

    def _give_standard_parts(self) -> str | None:
        """Send the standard parts to this worker once (see the server's "standard" op); why not, or None."""
        if self._standard_given:
            return None
        request_id = self._send({"op": "standard", "source": STANDARD_FILE.read_text(encoding="utf-8")})
        try:
            message, payload = self._receive(request_id, time.monotonic() + self.call_timeout, self.max_response_bytes)
            observation = observation_from_response(message, self.max_response_bytes, payload=payload)
        except (TimeoutError, EOFError, ProtocolError, DeadlineReached) as error:
            self._discard()
            return f"the worker running your code could not take the grader's standard parts ({error or 'it died'})"
        if not observation.ok:
            return observation.message
        self._standard_given = True
        return None

    def _discard(self) -> None:
        self._standard_given = False
        if self._proc is not None:
            self._proc.close()
            self._proc = None
        self._pending_load = None
        self._buffer.clear()

    # ------------------------------------------------------------------ messages
    def _send(self, message: dict[str, Any]) -> int:
        assert self._proc is not None
        self._next_id += 1
        try:
            self._proc.stdin.write(encode_message({"id": self._next_id, **message}))
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; reading its answer reports how
        return self._next_id

    def _receive(self, request_id: int, deadline: float, tensor_limit: int) -> tuple[dict[str, Any], bytes | None]:
        """The response to `request_id` and the tensor bytes after its line (None when it announces none), which
        are refused unread when it announces more than `tensor_limit`. Raises TimeoutError at `deadline`,
        DeadlineReached at the grade's deadline when that comes first, EOFError (the worker closed its end) or
        ProtocolError."""
        message = decode_message(self._read_line(deadline), self.max_response_bytes)
        if message.get("id") != request_id:
            raise ProtocolError(f"response for request {message.get('id')!r}, expected {request_id}")
        size = announced_bytes(message, tensor_limit)
        return message, None if size is None else self._read_exactly(size, deadline)

    def _read_line(self, deadline: float) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self.max_response_bytes:
                raise ProtocolError(f"response exceeds the limit of {self.max_response_bytes:,} bytes")
            self._buffer += self._read_some(deadline, _READ_CHUNK)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        """The next `size` bytes of the stream (already bounded by the caller), read in chunks."""
        chunks = [bytes(self._buffer[:size])]
        del self._buffer[:size]
        missing = size - len(chunks[0])
        while missing:
            chunk = self._read_some(deadline, min(missing, 16 * _READ_CHUNK))
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def _read_some(self, deadline: float, most: int) -> bytes:
        """At most `most` bytes from the worker, once some arrive before `deadline` (or the grade's deadline)."""
        assert self._proc is not None
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if self.deadline is not None and self.deadline.remaining() < remaining:
                    if self.deadline.expired:
                        raise DeadlineReached(self.deadline.message)
                    remaining = self.deadline.remaining()
                elif remaining <= 0:
                    raise TimeoutError
                if not selector.select(remaining):
                    continue
                data = os.read(fd, most)
                if not data:
                    raise EOFError
                return data
