"""Fixtures of the grading suites.

- `submission`, `worker`, `reference_runner`, `figures`: what the grading plugin of this run holds (the
  ingested notebook, the sandboxed worker, the reference runner, the report's figures);
- `observe(probe, **args)` runs a probe on the student's code (in the sandboxed worker);
- `reference(probe, **args)` runs the same probe on the solution (here, in the trusted process);
- `profile`, `train_labels`, `test_labels`: the profile's budgets and thresholds and the STL-10 labels,
  which never leave this process; `probe_accuracy(features)` fits and scores the trusted linear probe on
  features this process computed (`autograder.grading.trained`: training runs in the worker send back
  weights only, loaded here with `trained_run`, and `run_data` holds the images they are evaluated on);
- `run_seed`: a seed drawn afresh for every grading run, for numeric checks whose inputs a submission
  must not be able to predict.
"""

from __future__ import annotations

import secrets
import types
from collections.abc import Callable
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from autograder.grading.plugin import GradingPlugin, get_grading_plugin
from autograder.grading.reference import ReferenceRunner
from autograder.grading.trained import Architecture, TrainedRun, trained_run
from autograder.ingest.extract import Submission
from autograder.profiles.prepare import PreparedPaths
from autograder.profiles.profile import Profile, load_profile
from autograder.results.figures import Figures
from autograder.training.probe import fit_and_score
from autograder.training.runs import RunData
from autograder.worker.client import Worker
from autograder.worker.protocol import Observation


@pytest.fixture(scope="session")
def grading(pytestconfig: pytest.Config) -> GradingPlugin:
    return get_grading_plugin(pytestconfig)


@pytest.fixture(scope="session")
def submission(grading: GradingPlugin) -> Submission:
    """The ingested submission; every test using it fails with the reason when it could not be read."""
    return grading.readable_submission()


@pytest.fixture(scope="session")
def worker(grading: GradingPlugin, submission: Submission) -> Worker:
    """The sandboxed worker holding the provided code and the submission's definitions."""
    return grading.worker(submission)


@pytest.fixture(scope="session")
def reference_runner(grading: GradingPlugin) -> ReferenceRunner:
    """Probes on the reference solution, run in this process (the worker never holds the solution)."""
    return grading.reference_instance


@pytest.fixture(scope="session")
def figures(grading: GradingPlugin) -> Figures:
    """Images and curves for the HTML report, added by tests from observations they already have."""
    return grading.run_figures


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


@pytest.fixture(scope="session")
def profile(reference_runner: ReferenceRunner) -> Profile:
    return load_profile(reference_runner.profile)


@pytest.fixture(scope="session")
def stl10_labels(profile: Profile) -> dict[str, torch.Tensor]:
    return load_file(str(PreparedPaths(profile.cache_dir()).stl10_labels))


@pytest.fixture(scope="session")
def train_labels(stl10_labels: dict[str, torch.Tensor]) -> torch.Tensor:
    return stl10_labels["train"]


@pytest.fixture(scope="session")
def test_labels(stl10_labels: dict[str, torch.Tensor]) -> torch.Tensor:
    return stl10_labels["test"]


@pytest.fixture(scope="session")
def reference_ns(reference_runner: ReferenceRunner) -> types.SimpleNamespace:
    """The reference namespace (provided code), for computing features from trained weights here."""
    return reference_runner.namespace()


@pytest.fixture(scope="session")
def run_data(profile: Profile) -> RunData:
    """The profile's prepared images, which trained weights are evaluated on in this process."""
    return RunData.load(profile)


@pytest.fixture(scope="session")
def train_weights(worker: Worker, reference_ns: types.SimpleNamespace) -> Callable[..., TrainedRun]:
    """`train_weights(probe, architecture, timeout=..., **args)`: a training probe whose answer must be exactly
    the weights of `architecture` (checked before they are decoded), loaded into it on this process's device."""

    def run(probe: str, architecture: Architecture, timeout: float, **args: Any) -> TrainedRun:
        observation = worker.call(probe, timeout=timeout, expect=architecture.specs(), **args)
        return trained_run(observation, architecture, reference_ns.DEVICE)

    return run


@pytest.fixture(scope="session")
def probe_accuracy(profile: Profile, train_labels: torch.Tensor, test_labels: torch.Tensor) -> Callable[..., float]:
    """`probe_accuracy(features)`: the trusted linear probe (the notebook's protocol, the profile's epochs)
    fitted on the "train" features and scored on the "test" features, both computed in this process."""

    def score(features: dict[str, torch.Tensor]) -> float:
        train, test = features["train"], features["test"]
        budgets = profile.grading_budgets
        return fit_and_score(
            train, train_labels, test, test_labels, budgets.probe_epochs, profile.seed, budgets.batch_size
        )

    return score


@pytest.fixture(scope="session")
def run_seed() -> int:
    return secrets.randbelow(2**31)

