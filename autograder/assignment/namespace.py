"""The assignment's definitions as a live namespace, for code we trust (the reference, calibration)."""

from __future__ import annotations

import os
import types
from contextlib import contextmanager

from autograder.assignment.source import assignment_code


@contextmanager
def _profile_environment(profile: str):
    previous = os.environ.get("PS7_PROFILE")
    os.environ["PS7_PROFILE"] = profile
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PS7_PROFILE"]
        else:
            os.environ["PS7_PROFILE"] = previous


def reference_namespace(profile: str) -> types.ModuleType:
    """Provided code and reference solutions, defined as the notebook defines them under `PS7_PROFILE`."""
    module = types.ModuleType("ps7_reference")
    with _profile_environment(profile):
        exec(compile(assignment_code(solution=True), "<ps7 reference>", "exec"), module.__dict__)
    return module
