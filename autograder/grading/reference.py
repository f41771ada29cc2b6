"""The reference's side of a comparison: probes run on the reference solution, in the trusted process.

The reference is our code, so it runs here rather than in the sandbox, and the student's process never
holds the solution (a submission could otherwise subclass or copy it). Results go through the same wire
encoding as the worker's, so a suite compares like with like; they are cached per call, because probes
are deterministic given their arguments and several tests share one reference run.
"""

from __future__ import annotations

import json
import types
from functools import lru_cache
from typing import Any

from autograder.assignment.namespace import reference_namespace
from autograder.profiles.profile import cache_root
from autograder.worker.probes import PROBES, ProbeContext
from autograder.worker.probes.base import run_probe
from autograder.worker.protocol import Observation, decode_message, encode_message, observation_from_response


@lru_cache(maxsize=2)
def _reference_context(profile: str, cache: str) -> ProbeContext:
    """The reference namespace takes seconds to build; several grades in one process (batch corpus tests,
    calibration) share it. Probes build fresh models from it, so sharing changes no result."""
    return ProbeContext(reference_namespace(profile).__dict__)


class ReferenceRunner:
    """`call(probe, **args)` like `Worker.call`, on the reference solution of `profile`."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self._cache: dict[str, Observation] = {}

    def prepare(self) -> None:
        """Build the reference namespace now rather than on the first call."""
        self._context()

    def namespace(self) -> types.SimpleNamespace:
        """The reference namespace itself (provided code and solutions), for the trusted side's own computations
        (the features of the weights a training run sent back)."""
        return types.SimpleNamespace(**self._context().namespace)

    def _context(self) -> ProbeContext:
        return _reference_context(self.profile, str(cache_root()))

    def call(self, probe: str, **args: Any) -> Observation:
        key = json.dumps([probe, args], sort_keys=True)
        if key not in self._cache:
            self._cache[key] = self._run(probe, args)
        return self._cache[key]

    def _run(self, probe: str, args: dict[str, Any]) -> Observation:
        response = run_probe(PROBES[probe], self._context(), args)
        payload = response.pop("payload", None)
        message = decode_message(encode_message({"id": 0, **response}))
        observation = observation_from_response(message, len(payload or b""), payload=payload)
        if not observation.ok:
            message = f"internal grader error: the reference failed in `{probe}`: {observation.message}"
            return Observation.failure(message)
        return observation
