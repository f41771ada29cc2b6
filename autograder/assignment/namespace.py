"""The assignment's definitions as a live namespace, for code we trust (the reference, calibration)."""

from __future__ import annotations

import os
import types
from unittest.mock import patch

from autograder.assignment.source import assignment_code


def reference_namespace(profile: str) -> types.ModuleType:
    """Provided code and reference solutions, defined as the notebook defines them under `PS7_PROFILE`."""
    module = types.ModuleType("ps7_reference")
    with patch.dict(os.environ, {"PS7_PROFILE": profile}):
        exec(compile(assignment_code(solution=True), "<ps7 reference>", "exec"), module.__dict__)
    return module
