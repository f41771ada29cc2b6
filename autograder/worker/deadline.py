"""The grade-wide deadline: one monotonic end time owned by the trusted process.

Every worker call and load waits at most until it, and pytest-timeout stops a test at it, so nothing the
worker does (hanging, ignoring its own timers, sending progress) can make a grade last longer. Its length is
the profile's `deadline_minutes` (15 by default, Gradescope's usual limit leaves room for setup), or
`PS7_GRADE_DEADLINE_SECONDS` in the grader's own environment (the tests use a short one).
"""

from __future__ import annotations

import os
import time

DEADLINE_ENVIRONMENT = "PS7_GRADE_DEADLINE_SECONDS"


class Deadline:
    """`seconds` from now on the monotonic clock; `bound(timeout)` is the most a wait may still take."""

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a grade's deadline must be a positive number of seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds

    @classmethod
    def for_grade(cls, deadline_minutes: float) -> Deadline:
        """The profile's deadline, unless the grader's environment sets one in seconds."""
        override = os.environ.get(DEADLINE_ENVIRONMENT)
        if override:
            try:
                return cls(float(override))
            except ValueError as error:
                raise ValueError(f"{DEADLINE_ENVIRONMENT}={override!r}: {error}") from None
        return cls(deadline_minutes * 60.0)

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def bound(self, timeout: float) -> float:
        """`timeout`, or less when the grade ends sooner."""
        return min(timeout, self.remaining())

    @property
    def message(self) -> str:
        """What a test stopped or not started because of the deadline says."""
        return f"did not finish: the grade's time limit of {self.seconds / 60:.3g} min was reached"
