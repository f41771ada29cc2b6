"""Fixtures of the grading suites.

- `submission`, `worker`, `reference_runner`, `figures`: what the grading plugin of this run holds (the
  ingested notebook, the sandboxed worker, the reference runner, the report's figures);
- `observe(probe, **args)` runs a probe on the student's code (in the sandboxed worker);
- `reference(probe, **args)` runs the same probe on the solution (here, in the trusted process);
- `profile`, `train_labels`, `test_labels`: the profile's budgets and thresholds and the STL-10 labels,
  which never leave this process; `probe_accuracy(observation)` scores features the worker returned,
  obtained with `expect=expected_features` (their shapes and dtypes, checked before they are decoded);
- `run_seed`: a seed drawn afresh for every grading run, for numeric checks whose inputs a submission
  must not be able to predict.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import load_file

from autograder.grading.plugin import GradingPlugin, get_grading_plugin
from autograder.grading.reference import ReferenceRunner
from autograder.ingest.extract import Submission
from autograder.profiles.prepare import PreparedPaths
from autograder.profiles.profile import Profile, load_profile
from autograder.results.figures import Figures
from autograder.training.probe import probe_accuracy as fit_and_score
from autograder.worker.client import Worker
from autograder.worker.protocol import Observation, TensorSpec

AUTOENCODER_FEATURES = 24 * 4 * 4  # the flattened output of the standard Encoder: Method I's and III's features


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
def expected_features(
    profile: Profile, train_labels: torch.Tensor, test_labels: torch.Tensor
) -> dict[str, TensorSpec]:
    """What a probe returning features for the linear probe must send: one float row per labelled train and
    test image, at most as wide as the widest features the notebook builds (the image encoder's, or the
    autoencoder's 24 x 4 x 4), so that the probe built from them, and the answer that carries them, are bounded."""
    widest = max(AUTOENCODER_FEATURES, int(profile.backbones["image"]["embedding_dim"]))
    return {
        "train": TensorSpec((len(train_labels), None), widest=widest),
        "test": TensorSpec((len(test_labels), None), widest=widest),
    }


@pytest.fixture(scope="session")
def probe_accuracy(profile: Profile, train_labels: torch.Tensor, test_labels: torch.Tensor) -> Callable[..., float]:
    """`probe_accuracy(observation)`: the trusted linear probe (the notebook's protocol, the profile's epochs)
    fitted on the observation's "train" features and scored on its "test" features (an observation made with
    `expect=expected_features`)."""

    def score(observation: Observation) -> float:
        train, test = observation.tensors["train"], observation.tensors["test"]
        budgets = profile.grading_budgets
        return fit_and_score(
            train, train_labels, test, test_labels, budgets.probe_epochs, profile.seed, budgets.batch_size
        )

    return score


@pytest.fixture(scope="session")
def run_seed() -> int:
    return secrets.randbelow(2**31)

