"""Fixtures of the grading suites, on top of `submission` and `worker` from the grading plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autograder.worker.client import Worker
from autograder.worker.protocol import Observation


@pytest.fixture
def observe(worker: Worker) -> Callable[..., Observation]:
    """`observe(probe, **args)`: a successful observation, or the test fails with the worker's message
    (the student's error and traceback, a timeout, a crash)."""

    def run(probe: str, **args: Any) -> Observation:
        observation = worker.call(probe, **args)
        if not observation.ok:
            pytest.fail(observation.message, pytrace=False)
        return observation

    return run
