"""The assignment's definitions as a live namespace, for code we trust (the reference, calibration)."""

from __future__ import annotations

import os
import types
from collections.abc import Sequence
from unittest.mock import patch

from autograder.assignment.source import assignment_code


def reference_namespace(profile: str, replacements: Sequence[tuple[str, str]] = ()) -> types.ModuleType:
    """Provided code and reference solutions, defined as the notebook defines them under `PS7_PROFILE`.

    `replacements` (old, new) are made in the code first, as the corpus's mutants make them in the notebook, so that a
    benchmark or a test can run the reference with one known bug; each `old` must occur exactly once."""
    code = assignment_code(solution=True)
    for old, new in replacements:
        if code.count(old) != 1:
            raise ValueError(f"{old!r} occurs {code.count(old)} times in the reference's code, not once")
        code = code.replace(old, new)
    module = types.ModuleType("ps7_reference")
    with patch.dict(os.environ, {"PS7_PROFILE": profile}):
        exec(compile(code, "<ps7 reference>", "exec"), module.__dict__)
    return module
