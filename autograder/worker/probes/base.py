"""What every probe shares: the registry, the context a probe runs in, and its error type.

A probe observes (shapes, layer lists, losses, trained weights, features) and never judges: expected
values and verdicts live in the trusted grading suites. A probe takes a `ProbeContext` and JSON
arguments, and returns a dict whose values are JSON data, except top-level `torch.Tensor` values, which
travel as safetensors. The same probe runs on the student's namespace (in the sandboxed worker) and on
the reference's (in the trusted process, `autograder.grading.reference`), so a suite compares the two.
"""

from __future__ import annotations

import importlib
import math
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from autograder.worker.errors import describe_error, student_traceback
from autograder.worker.protocol import ProtocolError, decode_tensors, tensor_payload

MAX_INPUT_ELEMENTS = 10_000_000

PROBES: dict[str, Callable[..., dict[str, Any]]] = {}


class ProbeError(Exception):
    """The probe could not observe what it was asked to; the message is shown to the student as is."""


class ProbeContext:
    """The namespace a probe observes (the student's or the reference's), and why a name is missing:
    `load_errors` by part (a definition or statement that failed to load), `unavailable` by name (bound only
    by statements the grader does not run, or by a part that failed)."""

    def __init__(
        self,
        namespace: dict[str, Any],
        load_errors: dict[str, str] | None = None,
        unavailable: dict[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self._load_errors = dict(load_errors or {})
        self._unavailable = dict(unavailable or {})

    def get(self, name: str) -> Any:
        """`name` from the namespace, with a message a student can act on when it is missing."""
        if name in self.namespace:
            return self.namespace[name]
        if name in self._load_errors:
            raise ProbeError(f"`{name}` could not be loaded from your notebook: {self._load_errors[name]}")
        if name in self._unavailable:
            raise ProbeError(f"`{name}` is not available to the grader: {self._unavailable[name]}")
        raise ProbeError(f"`{name}` is not defined in your notebook")

    def why_unbound(self, error: BaseException) -> str | None:
        """For a NameError of a name the grader left unbound on purpose (or could not bind), the reason."""
        name = getattr(error, "name", None)
        if isinstance(error, NameError) and isinstance(name, str) and name not in self.namespace:
            return self._unavailable.get(name)
        return None


def probe(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Register a probe under its function name."""
    PROBES[function.__name__] = function
    return function


def checked_shape(value: object, what: str) -> list[int]:
    """A shape from the trusted side, refused when malformed or too large to allocate."""
    if not isinstance(value, list) or not all(isinstance(n, int) and 0 < n for n in value):
        raise ProbeError(f"internal grader error: {what} must be a list of positive integers, got {value!r}")
    if math.prod(value) > MAX_INPUT_ELEMENTS:
        raise ProbeError(f"internal grader error: {what} {value} is too large")
    return value


# The grader's own classes, by identity: the standard parts (when this process holds them) and the probes' stubs,
# recorded as they are created, before any student code can reach them. A student's model may not be one, inherit
# from one, or borrow one of their methods. Names are checked as well (a second line only: a class can say any
# module it likes).
_GRADER_CLASSES: set[type] = set()
_GRADER_CODE: set[object] = set()
_GRADER_MODULES = ("autograder.worker.", "autograder.assignment.", "autograder.grading.")
_STANDARD: dict[str, types.ModuleType] = {}
_WITHHELD = {"standard": False}
STANDARD_MODULE = "autograder.worker.standard"


def grader_class(klass: type) -> type:
    """Record `klass` (and the code of its methods) as the grader's own."""
    _GRADER_CLASSES.add(klass)
    for value in vars(klass).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None:
            _GRADER_CODE.add(code)
    return klass


def withhold_standard() -> None:
    """In the worker: the standard parts come only from the grader (`install_standard`), once the tests of the
    student's own Encoder, Decoder and ProjectionHead are done; until then this process never holds them (and
    the sandbox masks their file)."""
    _WITHHELD["standard"] = True


def install_standard(module: types.ModuleType) -> None:
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
            grader_class(value)
    _STANDARD["module"] = module


def standard() -> types.ModuleType:
    """The standard parts (`autograder.worker.standard`): in the worker, the module the grader sent; in the
    trusted process, imported."""
    module = _STANDARD.get("module")
    if module is None:
        if _WITHHELD["standard"]:
            raise ProbeError("internal grader error: this probe needs the standard parts, which the worker lacks")
        install_standard(importlib.import_module(STANDARD_MODULE))
        module = _STANDARD["module"]
    return module


def _borrowed(klass: type) -> str | None:
    for name, value in vars(klass).items():
        if getattr(getattr(value, "__func__", value), "__code__", None) in _GRADER_CODE:
            return name
    return None


def refuse_grader_classes(model: nn.Module, name: str, allowed: tuple[type, ...] = ()) -> None:
    """A student's model may not be, contain, inherit from or borrow methods of the grader's own classes (the
    standard parts the worker holds for component isolation): that would be the grader grading itself."""
    for module in model.modules():
        for klass in type(module).__mro__:
            if klass in allowed:
                continue
            if klass in _GRADER_CLASSES or klass.__module__.startswith(_GRADER_MODULES):
                raise ProbeError(
                    f"`{name}` is built on the grader's own `{klass.__name__}`; write the component yourself"
                )
            method = _borrowed(klass)
            if method is not None:
                raise ProbeError(
                    f"`{name}` uses the grader's own code as `{klass.__name__}.{method}`; write the component yourself"
                )


def instantiate(
    ctx: ProbeContext, name: str, init_args: dict[str, Any] | None, seed: int, allowed: tuple[type, ...] = ()
) -> nn.Module:
    """`name(**init_args)` under a fixed seed, refused when it is not a module or is the grader's own."""
    cls = ctx.get(name)
    torch.manual_seed(seed)
    model = cls(**(init_args or {}))
    if not isinstance(model, nn.Module):
        raise ProbeError(f"`{name}(...)` should create a torch.nn.Module, but it created a {type(model).__name__}")
    refuse_grader_classes(model, name, allowed)
    return model


def random_tensor(shape: list[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(checked_shape(shape, "shape"), generator=generator)


def tensors_argument(text: object, what: str = "tensors") -> dict[str, torch.Tensor]:
    """Tensors the trusted side sent as an argument (base64 safetensors from `protocol.encode_tensors`)."""
    try:
        return decode_tensors(text)
    except ProtocolError as error:
        raise ProbeError(f"internal grader error: bad {what} argument: {error}") from None


def run_probe(function: Callable[..., dict[str, Any]], context: ProbeContext, args: dict[str, Any]) -> dict[str, Any]:
    """A probe's result (or failure) as a response body, its tensors as safetensors bytes under "payload" (sent
    after the response's line); shared with the trusted side's reference runs."""
    try:
        result = function(context, **args)
    except ProbeError as error:
        return {"ok": False, "error": str(error)}
    except BaseException as error:  # noqa: B036 - sys.exit in student code fails this call only
        text = describe_error(error)
        why = context.why_unbound(error)
        return {"ok": False, "error": f"{text}: {why}" if why else text, "traceback": student_traceback(error)}
    data = {key: value for key, value in result.items() if not isinstance(value, torch.Tensor)}
    tensors = {key: value for key, value in result.items() if isinstance(value, torch.Tensor)}
    return {"ok": True, "data": data, "payload": tensor_payload(tensors) if tensors else None}
