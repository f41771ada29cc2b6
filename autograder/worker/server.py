"""The worker: runs inside the sandbox, loads student code next to the reference, and serves probe calls.

Started as `python -m autograder.worker.server` (through `start_sandboxed`). It keeps private copies of
fds 0 and 1 for the protocol (see `autograder.worker.protocol`), points fd 0 at /dev/null and fd 1 at
stderr (which the sandbox captures and caps), and replaces `sys.stdout`/`sys.stderr` with a capped
in-memory capture whose text is returned with each response: nothing student code prints can corrupt
the protocol.

Requests (one JSON object per line, each with an integer "id"):
- {"op": "load", "profile": P, "provided": SRC, "definition_timeout": S, "known_errors": {name: why}}: builds
   the student namespace from the canonical provided code (sent by the grader: this process never reads the
   assignment source, which holds the solutions). "known_errors" are the parts left out because they stopped an
   earlier worker. Nothing in it is the submission's, so a worker can load before its submission is known.
- {"op": "unavailable", "names": {name: why}}: the names no loaded part binds, with the reason, which explains
   a NameError a probe then meets.
- {"op": "define", "name": N, "source": SRC, "filename": F, "lineno": L, "binds": [names], "label": TEXT}:
   runs one student part (the imports, a definition, a top-level statement) in that namespace under a timer
   of "definition_timeout" seconds. The grader sends one request per part, so that when a part kills the
   worker it knows from its own records which one did. The response's data: "error" (None when it loaded)
   and the failed guarded imports.
- {"op": "standard", "source": SRC}: the standard parts (`autograder.worker.standard`, sent by the grader as
   text; the sandbox masks the file). The grader sends them only after the tests of the student's own Encoder,
   Decoder and ProjectionHead, which the standard parts would answer, so those are observed in a process that
   never held them; until then a probe that needs them fails.
- {"op": "call", "probe": NAME, "args": {...}}: runs a probe from `autograder.worker.probes`.
- {"op": "ping"}: answers {"ok": true}.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from autograder.worker.errors import describe_error, failed_for_want_of_a_gpu, student_traceback
from autograder.worker.names import IMPORT_ERRORS_NAME
from autograder.worker.probes import PROBES, ProbeContext
from autograder.worker.probes.base import STANDARD_MODULE, install_standard, run_probe, withhold_standard
from autograder.worker.protocol import (
    MAX_RESPONSE_BYTES,
    TENSOR_BYTES_FIELD,
    ProtocolError,
    decode_message,
    encode_message,
)

MAX_REQUEST_BYTES = 16 * 1024**2
CAPTURE_CHARS = 64 * 1024


# Taken before any student code runs: a definition that replaces an entry of the registry while loading does
# not change which probe answers (an in-process guard, not a boundary: see the security notes in README).
_PROBES_AT_START = dict(PROBES)

if TYPE_CHECKING:
    from autograder.worker.cuda_on_cpu import CudaOnCpu


class _PrintedOutput(io.TextIOBase):
    """A text stream that keeps the first CAPTURE_CHARS characters written since the last `take()`."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = CAPTURE_CHARS - self._size
        if room > 0:
            self._parts.append(text[:room])
            self._size += min(room, len(text))
        self._dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def take(self) -> str:
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n[... {self._dropped} more characters not kept]"
        self._parts, self._size, self._dropped = [], 0, 0
        return text


class _LoadTimeout(BaseException):
    """Raised by the interval timer in a definition that takes too long to load (BaseException, so that a
    student's `except Exception` does not swallow it)."""


@contextmanager
def _timer(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise _LoadTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _new_namespace(name: str) -> dict[str, Any]:
    module = types.ModuleType(name)
    return module.__dict__


class WorkerState:
    """The student's namespace, what went wrong while loading it, and the names deliberately left unbound."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] | None = None
        self.load_errors: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.definition_timeout = 20.0
        self.cuda_on_cpu: CudaOnCpu | None = None

    def retry_on_the_cpu(self, error_text: str | None) -> bool:
        """Whether student code that failed with `error_text` should run again, its requests for "cuda" now
        given to the CPU (once per worker: the mode then stays)."""
        if self.cuda_on_cpu is not None or not failed_for_want_of_a_gpu(error_text):
            return False
        from autograder.worker.cuda_on_cpu import run_cuda_requests_on_cpu  # torch, which the failed code had

        self.cuda_on_cpu = run_cuda_requests_on_cpu()
        return self.cuda_on_cpu is not None

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        profile = str(request.get("profile", "synthetic"))
        os.environ["PS7_PROFILE"] = profile
        student = _new_namespace("ps7_student")
        try:
            exec(compile(str(request.get("provided", "")), "<ps7 provided>", "exec"), student)
        except Exception as error:  # a grader problem (e.g. an unprepared profile), not the student's
            return {"ok": False, "error": f"the provided code failed to load: {describe_error(error)}"}
        self.namespace = student
        self.load_errors = {str(name): str(text) for name, text in dict(request.get("known_errors", {})).items()}
        self.unavailable = {}
        self.definition_timeout = float(request.get("definition_timeout", 20.0))
        return {"ok": True, "data": {}}

    def note_unavailable(self, request: dict[str, Any]) -> dict[str, Any]:
        self.unavailable.update({str(name): str(text) for name, text in dict(request.get("names", {})).items()})
        return {"ok": True, "data": {}}

    def define(self, part: dict[str, Any]) -> dict[str, Any]:
        """Run one student part; its failure is recorded against its name and the names it should bind."""
        student = self.namespace
        if student is None:
            return {"ok": False, "error": "internal grader error: define before load"}
        name = str(part.get("name"))
        limit = self.definition_timeout
        source = "\n" * (int(part.get("lineno", 1)) - 1) + str(part.get("source", ""))
        filename = str(part.get("filename", "<cell>"))
        error_text = _run_part(source, filename, student, limit)
        if self.retry_on_the_cpu(error_text):
            error_text = _run_part(source, filename, student, limit)
        if error_text is not None:
            self.load_errors[name] = error_text
            label = str(part.get("label", f"`{name}`"))
            for bound in part.get("binds", []):
                if bound not in student:
                    self.unavailable.setdefault(
                        str(bound),
                        f"`{bound}` is bound by {label}, which failed when the grader ran it: "
                        f"{error_text.splitlines()[0]}",
                    )
        import_errors = [list(entry) for entry in student.pop(IMPORT_ERRORS_NAME, [])]
        return {"ok": True, "data": {"error": error_text, "import_errors": import_errors}}

    def standard(self, request: dict[str, Any]) -> dict[str, Any]:
        """Install the standard parts the grader sent (its own code, not the student's)."""
        module = types.ModuleType(STANDARD_MODULE)
        try:
            exec(compile(str(request.get("source", "")), "<ps7 standard parts>", "exec"), module.__dict__)
        except Exception as error:  # noqa: BLE001 - a grader problem, or student code that broke the interpreter
            return {"ok": False, "error": f"internal grader error: the standard parts failed: {describe_error(error)}"}
        install_standard(module)
        return {"ok": True, "data": {}}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("probe")
        function = _PROBES_AT_START.get(name) if isinstance(name, str) else None
        if function is None:
            return {"ok": False, "error": f"internal grader error: unknown probe {name!r}"}
        args = request.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": f"internal grader error: probe arguments must be an object, got {args!r}"}
        if self.namespace is None:
            return {"ok": False, "error": "internal grader error: probe called before load"}
        context = ProbeContext(self.namespace, self.load_errors, self.unavailable)
        response = run_probe(function, context, args)
        if not response["ok"] and self.retry_on_the_cpu(response.get("error")):
            response = run_probe(function, context, args)
        return response


def _run_part(source: str, filename: str, student: dict[str, Any], limit: float) -> str | None:
    """Run one student part in its namespace under a timer: None, or what went wrong."""
    try:
        with _timer(limit):
            exec(compile(source, filename, "exec"), student)
    except _LoadTimeout:
        return f"loading it took longer than {limit:g} s (is there a loop at top level?)"
    except BaseException as error:  # noqa: B036 - SystemExit from student code costs this part only
        return f"{describe_error(error)}\n{student_traceback(error)}".strip()
    return None


class Server:
    """The request loop: one response per request, written whole to the private protocol descriptor."""

    def __init__(self, requests: BinaryIO, responses: BinaryIO, capture: _PrintedOutput, max_bytes: int) -> None:
        self.requests = requests
        self.responses = responses
        self.capture = capture
        self.max_bytes = max_bytes
        self.state = WorkerState()

    def send(self, message: dict[str, Any]) -> None:
        """The response's line, then its tensors' bytes, which the line announces. `max_bytes` bounds the line;
        the tensors are bounded by the trusted side, which knows what each call should return
        (`protocol.response_limit`)."""
        payload = message.pop("payload", None)
        if payload:
            message[TENSOR_BYTES_FIELD] = len(payload)
        try:
            line = encode_message(message)
        except (TypeError, ValueError) as error:
            error_text = f"internal grader error: unserialisable result: {error}"
            line, payload = encode_message({"id": message.get("id"), "ok": False, "error": error_text}), None
        if len(line) > self.max_bytes:
            error_text = f"the observation is too large to send ({len(line):,} bytes; the limit is {self.max_bytes:,})"
            refusal = {"id": message.get("id"), "ok": False, "error": error_text, "stdout": message.get("stdout", "")}
            line, payload = encode_message(refusal), None
        self.responses.write(line)
        if payload:
            self.responses.write(payload)
        self.responses.flush()

    def serve(self) -> None:
        while True:
            line = self.requests.readline(MAX_REQUEST_BYTES + 1)
            if not line:
                return
            try:
                request = decode_message(line, MAX_REQUEST_BYTES)
            except ProtocolError as error:
                self.send({"id": None, "ok": False, "error": f"internal grader error: bad request: {error}"})
                return
            request_id = request.get("id")
            started = time.monotonic()
            self.capture.take()
            op = request.get("op")
            if op == "load":
                response = self.state.load(request)
            elif op == "unavailable":
                response = self.state.note_unavailable(request)
            elif op == "define":
                response = self.state.define(request)
            elif op == "standard":
                response = self.state.standard(request)
            elif op == "call":
                response = self.state.call(request)
            elif op == "ping":
                response = {"ok": True, "data": {}}
            else:
                response = {"ok": False, "error": f"internal grader error: unknown op {op!r}"}
            response.update(id=request_id, stdout=self.capture.take(), seconds=time.monotonic() - started)
            self.send(response)


def main() -> None:
    """Take the protocol descriptors for ourselves, then serve until stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    responses = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    capture = _PrintedOutput()
    sys.stdout = sys.stderr = capture
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    max_bytes = int(os.environ.get("PS7_WORKER_MAX_RESPONSE", MAX_RESPONSE_BYTES))
    withhold_standard()
    try:
        Server(requests, responses, capture, max_bytes).serve()
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)  # the sandbox's capped stderr: the grader's log
        raise


if __name__ == "__main__":
    main()
