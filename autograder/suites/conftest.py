"""Fixtures of the grading suites, on top of `submission`, `worker` and `reference_runner` from the
grading plugin: `observe` runs a probe on the student's code, `reference` the same probe on the solution."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autograder.grading.reference import ReferenceRunner
from autograder.worker.client import Worker
from autograder.worker.protocol import Observation


def _succeeded(observation: Observation) -> Observation:
    if not observation.ok:
        pytest.fail(observation.message, pytrace=False)
    return observation


@pytest.fixture
def observe(worker: Worker) -> Callable[..., Observation]:
    """`observe(probe, **args)`: a successful observation of the student's code, or the test fails with the
    worker's message (the student's error and traceback, a timeout, a crash)."""
    return lambda probe, **args: _succeeded(worker.call(probe, **args))


@pytest.fixture
def reference(reference_runner: ReferenceRunner) -> Callable[..., Observation]:
    """`reference(probe, **args)`: the same probe on the reference solution."""
    return lambda probe, **args: _succeeded(reference_runner.call(probe, **args))
