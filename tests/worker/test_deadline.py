"""The grade-wide deadline as the worker client applies it: a call waits at most until the deadline, whatever
its own timeout; after the deadline no worker is started again."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from autograder.ingest import ingest
from autograder.worker.client import Worker
from autograder.worker.deadline import DEADLINE_ENVIRONMENT, Deadline

LOOPER = """import torch.nn as nn
class Looper(nn.Module):
    def forward(self, x):
        while True:
            pass
"""
DEADLINE_SECONDS = 20.0
MARGIN_SECONDS = 10.0


@pytest.fixture
def looper(synthetic_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "looper.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LOOPER)]), path)
    monkeypatch.setenv("PS7_CACHE", str(synthetic_cache))
    return ingest(path)


def test_a_call_waits_no_longer_than_the_grade_deadline_and_later_calls_fail_at_once(looper):
    with Worker(looper) as worker:
        worker.start()  # loading takes seconds on a busy machine; the deadline below counts from the call
        deadline = worker.deadline = Deadline(DEADLINE_SECONDS)
        observation = worker.call("forward_shape", name="Looper", input_shape=[1, 3], timeout=600)
        ended = time.monotonic()
        assert not observation.ok and "the grade's time limit" in observation.error, observation.error
        assert "`forward_shape` was running" in observation.error
        assert deadline.end <= ended <= deadline.end + MARGIN_SECONDS
        assert not worker.alive, "the worker that hung must be stopped"
        assert worker.timeouts == ["`forward_shape` was running when the grade's time limit was reached"]
        starts = worker.starts
        later = worker.call("encoder_structure")
        assert not later.ok and "the grade's time limit" in later.error and worker.starts == starts
        assert time.monotonic() - ended < 2, "a call after the deadline must fail at once"


def test_a_call_timeout_shorter_than_the_deadline_is_recorded_as_that_call(looper):
    with Worker(looper, deadline=Deadline(600)) as worker:
        observation = worker.call("forward_shape", name="Looper", input_shape=[1, 3], timeout=3)
        assert not observation.ok and "did not finish within 3 s" in observation.error
        assert worker.timeouts == ["`forward_shape` did not finish within 3 s"]


def test_the_deadline_comes_from_the_profile_unless_the_environment_overrides_it(monkeypatch):
    monkeypatch.delenv(DEADLINE_ENVIRONMENT, raising=False)
    assert Deadline.for_grade(15).seconds == 900
    monkeypatch.setenv(DEADLINE_ENVIRONMENT, "42")
    assert Deadline.for_grade(15).seconds == 42
    assert "0.7 min" in Deadline.for_grade(15).message
    monkeypatch.setenv(DEADLINE_ENVIRONMENT, "-1")
    with pytest.raises(ValueError, match=DEADLINE_ENVIRONMENT):
        Deadline.for_grade(15)
