"""The wire format between the trusted grader and the sandboxed worker: one JSON object per line.

Requests go to the worker's stdin, responses come back on its stdout (a private copy of fd 1 that
student code does not write to). Tensors travel as safetensors bytes, base64-encoded inside the JSON:
safetensors is a header of plain JSON plus raw numbers, so decoding it cannot run code, which pickle
(`torch.load`, numpy's `allow_pickle`) can. Everything the trusted side reads is size-checked before
it is parsed, and anything malformed becomes a `ProtocolError` with a message that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

MiB = 1024**2
MAX_RESPONSE_BYTES = 64 * MiB
MAX_HEADER_BYTES = 1 * MiB
TEXT_LIMIT = 4000

# dtypes a probe may return; anything else in a header is refused before safetensors sees it.
ALLOWED_DTYPES = frozenset({"BOOL", "U8", "I8", "I16", "I32", "I64", "F16", "BF16", "F32", "F64"})


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
    return f"{text[:head]}\n[... {len(text) - limit} characters truncated]\n{text[-tail:]}"


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


def encode_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """safetensors bytes of the tensors (copied to contiguous CPU memory), base64-encoded."""
    plain = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensors must map str to torch.Tensor, got {name!r}: {type(tensor).__name__}")
        plain[name] = tensor.detach().to("cpu").contiguous().clone()
    return base64.b64encode(safetensors_save(plain)).decode("ascii")


def check_safetensors(blob: bytes) -> None:
    """Refuse anything that is not a well-formed safetensors buffer, before the library parses it.

    safetensors' own loader would reject most garbage too; checking here gives a clear message, and
    says when a payload looks like the pickle or zip format that `torch.save` writes.
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
            raise ProtocolError(f"tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(n, int) for n in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise ProtocolError(f"tensor {name!r} has data offsets {offsets!r} outside the payload")
        if math.prod(shape) and offsets[1] == offsets[0]:
            raise ProtocolError(f"tensor {name!r} has shape {shape} but no data")


def decode_tensors(text: object, max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, torch.Tensor]:
    """Tensors from base64 safetensors text, size-checked; never unpickles anything."""
    if not isinstance(text, str):
        raise ProtocolError(f"tensors must be base64 text, got {type(text).__name__}")
    if len(text) * 3 // 4 > max_bytes:
        raise ProtocolError(f"tensor payload exceeds the limit of {max_bytes:,} bytes")
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("tensor payload is not valid base64") from None
    check_safetensors(blob)
    try:
        return dict(safetensors_load(blob))
    except Exception as error:  # the library's own errors: a header that lies about its data, etc.
        raise ProtocolError(f"tensor payload could not be decoded as safetensors: {error}") from None


def observation_from_response(message: dict[str, Any], max_bytes: int = MAX_RESPONSE_BYTES) -> Observation:
    """Turn a decoded response into an Observation, validating every field's type."""
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
    tensors = decode_tensors(message["tensors"], max_bytes) if message.get("tensors") else {}
    if not ok and not texts["error"]:
        texts["error"] = "the call failed without saying why"
    return Observation(ok=ok, data=data, tensors=tensors, seconds=float(seconds), **texts)
