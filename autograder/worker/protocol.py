"""The wire format between the trusted grader and the sandboxed worker: one JSON object per line.

Requests go to the worker's stdin, responses come back on its stdout (a private copy of fd 1 that
student code does not write to). Tensors travel as safetensors bytes: safetensors is a header of plain JSON
plus raw numbers, so decoding it cannot run code, which pickle (`torch.load`, numpy's `allow_pickle`) can.
A request carries its tensors base64-encoded inside the JSON (they are small). A response's tensors follow
its JSON line as raw bytes, announced by the line's `"tensor_bytes"`: features of 13,000 images (106 MB) or
ResNet50's weights (95 MB) do not fit one line's limit, and base64 inside JSON would hold four copies of
them at once. The trusted side refuses an announced size above what the call's expected tensors can take
(`response_limit`) before it reads or allocates anything of it. Everything the trusted side reads is
size-checked before it is parsed, and anything malformed becomes a `ProtocolError` with a message that says
what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autograder.truncation import keep_ends

# torch and safetensors are imported where tensors are encoded or decoded, not here: the grader starts its
# worker with this module loaded and before it imports torch itself, so that the two imports overlap.
if TYPE_CHECKING:
    import torch

MiB = 1024**2
MAX_RESPONSE_BYTES = 64 * MiB
MAX_HEADER_BYTES = 1 * MiB
TEXT_LIMIT = 4000

# dtypes a probe may return; anything else in a header is refused before safetensors sees it.
ALLOWED_DTYPES = frozenset({"BOOL", "U8", "I8", "I16", "I32", "I64", "F16", "BF16", "F32", "F64"})
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8, "F16": 2, "BF16": 2, "F32": 4, "F64": 8}
MAX_DIMENSION = 2**16  # the largest size a `None` dimension of a TensorSpec may take


@dataclass(frozen=True)
class TensorSpec:
    """The shape and dtypes a test expects of one tensor it computes with: each dimension an exact size (0
    included), or None for any size from 1 to `MAX_DIMENSION`. Checked on the safetensors header, before
    anything is decoded or allocated from it."""

    shape: tuple[int | None, ...]
    dtypes: frozenset[str] = FLOAT_DTYPES
    widest: int = MAX_DIMENSION  # the largest size a None dimension may take

    @property
    def max_bytes(self) -> int:
        """The most bytes a tensor of this spec can hold: what a response may carry for it."""
        elements = math.prod(self.widest if size is None else size for size in self.shape)
        return elements * max(_ITEM_BYTES[dtype] for dtype in self.dtypes)

    def problem(self, name: str, dtype: str, shape: list[int]) -> str | None:
        """Why a tensor of `dtype` and `shape` is not what was expected, or None."""
        wanted = "[" + ", ".join("N" if size is None else str(size) for size in self.shape) + "]"
        if dtype not in self.dtypes:
            return f"tensor {name!r} has dtype {dtype}, expected one of {', '.join(sorted(self.dtypes))}"
        fits = len(shape) == len(self.shape) and all(
            observed == size if size is not None else 1 <= observed <= self.widest
            for observed, size in zip(shape, self.shape, strict=True)
        )
        if not fits:
            return (
                f"tensor {name!r} has shape {shape}, expected {wanted} (N from 1 to {self.widest:,}); an empty "
                "or huge dimension usually means the model's output was replaced or reshaped"
            )
        return None


def response_limit(expect: dict[str, TensorSpec] | None, base: int = MAX_RESPONSE_BYTES) -> int:
    """The most tensor bytes one response may carry: `base` (for tensors the call does not declare, and for a
    call that declares none) plus the largest size of each expected tensor. The limit is on the whole answer,
    derived from what the test computes with, so real sizes pass and a bigger answer is refused unread."""
    return base + sum(spec.max_bytes for spec in (expect or {}).values())


class ProtocolError(ValueError):
    """A message from the worker is malformed, too large, or not in a format that is safe to decode."""


@dataclass
class Observation:
    """What one probe call observed. `ok` False means the call failed; `error` says why, for students."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    error: str = ""
    traceback: str = ""
    stdout: str = ""
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """The error and, when there is one, the student-facing traceback: what a failed test shows."""
        if self.ok:
            return ""
        return f"{self.error}\n{self.traceback}".strip() if self.traceback else self.error

    @classmethod
    def failure(cls, error: str, traceback: str = "", stdout: str = "") -> Observation:
        return cls(ok=False, error=error, traceback=traceback, stdout=stdout)


def truncate(text: str, limit: int = TEXT_LIMIT) -> str:
    """Keep the start and the end (where a traceback's last line is) of a long text."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    return keep_ends(text, head, tail, f"\n[... {len(text) - limit} characters truncated]\n")


def encode_message(message: dict[str, Any]) -> bytes:
    """One line of JSON. NaN and infinities are allowed: a diverging loss is an observation too."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_message(line: bytes, max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, Any]:
    """Parse one line into a JSON object, refusing oversized or non-object input."""
    if len(line) > max_bytes:
        raise ProtocolError(f"message of {len(line):,} bytes exceeds the limit of {max_bytes:,} bytes")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"message is not valid JSON ({error}); it starts with {bytes(line[:40])!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(message).__name__}")
    return message


def tensor_payload(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors bytes of the tensors (copied to contiguous CPU memory of their own: safetensors refuses
    tensors that share storage): what follows a response's line."""
    import torch
    from safetensors.torch import save as safetensors_save

    plain = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensors must map str to torch.Tensor, got {name!r}: {type(tensor).__name__}")
        plain[name] = tensor.detach().to("cpu").contiguous().clone()
    return safetensors_save(plain)


def encode_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """safetensors bytes of the tensors, base64-encoded: a request's tensor argument."""
    return base64.b64encode(tensor_payload(tensors)).decode("ascii")


TENSOR_BYTES_FIELD = "tensor_bytes"  # a response line's announcement of the raw safetensors bytes after it


def announced_bytes(message: dict[str, Any], limit: int) -> int | None:
    """The tensor bytes a response line announces (None: none follow), refused above `limit` before any of
    them is read."""
    size = message.get(TENSOR_BYTES_FIELD)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ProtocolError(f"response '{TENSOR_BYTES_FIELD}' must be a byte count, got {str(size)[:40]!r}")
    if size > limit:
        raise ProtocolError(
            f"the answer's tensor payload of {size:,} bytes exceeds the limit of {limit:,} bytes, the most that the "
            "tensors this test expects can take; the worker sent more, or larger, tensors than it was asked for"
        )
    return size


def check_safetensors(
    blob: bytes, expect: dict[str, TensorSpec] | None = None, max_bytes: int = MAX_RESPONSE_BYTES
) -> None:
    """Refuse anything that is not a well-formed safetensors buffer, before the library parses it, and any
    tensor that is not what `expect` says (missing, wrong dtype or shape).

    safetensors' own loader would reject most garbage too; checking here gives a clear message, and
    says when a payload looks like the pickle or zip format that `torch.save` writes. A tensor with an empty
    dimension holds no data but can make the trusted side allocate from its other dimensions (a probe as wide
    as `torch.empty(0, 10**8)`): its shape, with empty dimensions counted as 1, must fit the payload limit.
    """
    # A safetensors header length of 128 + 256n bytes also starts with 0x80, but its JSON header starts with "{".
    if (blob[:1] == b"\x80" or blob[:2] == b"PK") and blob[8:9] != b"{":
        raise ProtocolError("tensor payload looks like a pickle / torch.save file; only safetensors is accepted")
    if len(blob) < 8:
        raise ProtocolError(f"tensor payload of {len(blob)} bytes is too short for safetensors")
    size = int.from_bytes(blob[:8], "little")
    if size > min(MAX_HEADER_BYTES, len(blob) - 8):
        raise ProtocolError(f"tensor payload has a header length of {size:,} bytes that does not fit the payload")
    try:
        header = json.loads(blob[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("tensor payload header is not JSON; it is not safetensors") from None
    if not isinstance(header, dict):
        raise ProtocolError("tensor payload header is not a JSON object; it is not safetensors")
    data_bytes = len(blob) - 8 - size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in ALLOWED_DTYPES:
            raise ProtocolError(f"tensor {name!r} has an unsupported entry {str(entry)[:80]}")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError(f"tensor {name!r} has an invalid shape {str(shape)[:80]}")
        if math.prod(max(n, 1) for n in shape) * _ITEM_BYTES[entry["dtype"]] > max_bytes:
            raise ProtocolError(
                f"tensor {name!r} has shape {shape}: without its empty dimensions it would take more than the "
                f"limit of {max_bytes:,} bytes"
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(n, int) for n in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise ProtocolError(f"tensor {name!r} has data offsets {offsets!r} outside the payload")
        if math.prod(shape) and offsets[1] == offsets[0]:
            raise ProtocolError(f"tensor {name!r} has shape {shape} but no data")
        spec = (expect or {}).get(name)
        problem = spec.problem(name, entry["dtype"], shape) if spec is not None else None
        if problem is not None:
            raise ProtocolError(problem)
    missing = sorted(set(expect or {}) - set(header))
    if missing:
        raise ProtocolError(f"the answer lacks the expected tensors {', '.join(map(repr, missing))}")


def decode_payload(
    blob: bytes, max_bytes: int = MAX_RESPONSE_BYTES, expect: dict[str, TensorSpec] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors from raw safetensors bytes, size-checked and checked against `expect`; never unpickles anything."""
    if len(blob) > max_bytes:
        raise ProtocolError(f"tensor payload of {len(blob):,} bytes exceeds the limit of {max_bytes:,} bytes")
    check_safetensors(blob, expect, max_bytes)
    from safetensors.torch import load as safetensors_load

    try:
        return dict(safetensors_load(blob))
    except Exception as error:  # the library's own errors: a header that lies about its data, etc.
        raise ProtocolError(f"tensor payload could not be decoded as safetensors: {error}") from None


def decode_tensors(
    text: object, max_bytes: int = MAX_RESPONSE_BYTES, expect: dict[str, TensorSpec] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors from base64 safetensors text, size-checked and checked against `expect`; never unpickles
    anything."""
    if not isinstance(text, str):
        raise ProtocolError(f"tensors must be base64 text, got {type(text).__name__}")
    if len(text) * 3 // 4 > max_bytes:
        raise ProtocolError(f"tensor payload exceeds the limit of {max_bytes:,} bytes")
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("tensor payload is not valid base64") from None
    return decode_payload(blob, max_bytes, expect)


MAX_REPORTED_NAMES = 10_000  # definitions, load errors and import errors a load report may list
MAX_NAME_CHARS = 200  # a Python name longer than this is not one the extractor sent


@dataclass(frozen=True)
class LoadReport:
    """What the worker says it loaded: the names bound, each failed definition's error, and each skipped
    import as (where, statement, error)."""

    loaded: list[str]
    errors: dict[str, str]
    import_errors: list[list[str]]


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
        raise ProtocolError(
            f"load report '{field}' must hold names of 1 to {MAX_NAME_CHARS} characters, "
            f"got {type(value).__name__} {str(value)[:40]!r}"
        )
    return value


def load_report(data: dict[str, Any]) -> LoadReport:
    """The load report of a successful load, every field checked (types, counts, sizes): a malformed report
    is refused with a ProtocolError that says which field is wrong, never a crash of the grader."""
    loaded, errors, import_errors = data.get("loaded", []), data.get("errors", {}), data.get("import_errors", [])
    for key, value, kind in (
        ("loaded", loaded, list),
        ("errors", errors, dict),
        ("import_errors", import_errors, list),
    ):
        if not isinstance(value, kind):
            raise ProtocolError(f"load report '{key}' must be a JSON {kind.__name__}, got {type(value).__name__}")
        if len(value) > MAX_REPORTED_NAMES:
            raise ProtocolError(f"load report '{key}' lists {len(value):,} entries, more than {MAX_REPORTED_NAMES:,}")
    names = [_name(name, "loaded") for name in loaded]
    messages = {}
    for name, text in errors.items():
        if not isinstance(text, str):
            raise ProtocolError(f"load report 'errors' must map names to text, got {type(text).__name__}")
        messages[_name(name, "errors")] = truncate(text)
    triples = []
    for entry in import_errors:
        if not isinstance(entry, list) or len(entry) != 3 or not all(isinstance(part, str) for part in entry):
            raise ProtocolError(
                f"load report 'import_errors' entries must be [where, statement, error] texts, got {str(entry)[:60]!r}"
            )
        triples.append([truncate(part, 500) for part in entry])
    return LoadReport(names, messages, triples)


def observation_from_response(
    message: dict[str, Any],
    max_bytes: int = MAX_RESPONSE_BYTES,
    expect: dict[str, TensorSpec] | None = None,
    payload: bytes | None = None,
) -> Observation:
    """Turn a decoded response into an Observation, validating every field's type; a successful answer must
    carry the tensors of `expect`, each of the expected shape and dtype. Its tensors are the raw `payload`
    that followed its line, or (an older form, still read) base64 text in its "tensors" field; `max_bytes`
    bounds them."""
    ok = message.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError("response has no boolean 'ok' field")
    data = message.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError(f"response 'data' must be an object, got {type(data).__name__}")
    texts = {}
    for key in ("error", "traceback", "stdout"):
        value = message.get(key) or ""
        if not isinstance(value, str):
            raise ProtocolError(f"response '{key}' must be text, got {type(value).__name__}")
        texts[key] = truncate(value)
    seconds = message.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ProtocolError("response 'seconds' must be a number")
    wanted = expect if ok else None
    if payload:
        tensors = decode_payload(payload, max_bytes, wanted)
    elif message.get("tensors"):
        tensors = decode_tensors(message["tensors"], max_bytes, wanted)
    elif wanted:
        raise ProtocolError(f"the answer lacks the expected tensors {', '.join(map(repr, sorted(wanted)))}")
    else:
        tensors = {}
    if not ok and not texts["error"]:
        texts["error"] = "the call failed without saying why"
    return Observation(ok=ok, data=data, tensors=tensors, seconds=float(seconds), **texts)
