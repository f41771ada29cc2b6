"""Time limits from a profile's budgets and measured costs (`profiles.timing`), with their margin and floors."""

import json

import pytest

from autograder.profiles.profile import ProfileError, load_profile
from autograder.profiles.timing import (
    CUDA_MEMORY_BYTES,
    MARGIN,
    MIN_CALL_SECONDS,
    MIN_WORKER_SECONDS,
    TEST_GRACE_SECONDS,
    expected_seconds,
    training_call_seconds,
    training_test_seconds,
    worker_limits,
)
from autograder.worker.limits import Limits


def _variant(tmp_path, name="stl10", **changes):
    raw = json.loads(load_profile(name).path.read_text())
    raw.update(changes)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(raw))
    return load_profile(path)


def test_limits_grow_with_the_budgets_at_the_stated_margin(tmp_path):
    """On the notebook's budgets (AE 100 epochs) the autoencoder's call gets three times its measured cost."""
    costs = {"method1": {"once": 20, "per_epoch": 6.2}, "clip": {"once": 110, "per_epoch": 116}}
    budgets = {"ae_epochs": 100, "probe_epochs": 100, "clip_epochs": 3, "unlabeled_subset": 10000}
    profile = _variant(tmp_path, costs=costs, grading_budgets=budgets)
    assert expected_seconds(profile, "method1") == pytest.approx(20 + 100 * 6.2)
    assert training_call_seconds(profile, "method1") == pytest.approx(MARGIN * 640)
    assert training_call_seconds(profile, "clip") == pytest.approx(MARGIN * (110 + 3 * 116))
    assert training_test_seconds(profile) == pytest.approx(MARGIN * 640 + TEST_GRACE_SECONDS)
    limits = worker_limits(profile)
    training = 640 + 458  # Methods II and III have no costs here
    assert limits.wall_seconds == pytest.approx(max(MIN_WORKER_SECONDS, MARGIN * training))
    assert limits.cpu_seconds == int(2 * MARGIN * training) > MIN_WORKER_SECONDS
    assert limits.memory_bytes is not None


def test_small_budgets_and_profiles_without_costs_keep_the_floors():
    for name in ("synthetic", "stl10"):
        profile = load_profile(name)
        assert training_call_seconds(profile, "method1") == MIN_CALL_SECONDS
        assert worker_limits(profile).wall_seconds == MIN_WORKER_SECONDS
    assert expected_seconds(load_profile("synthetic"), "clip") == 0.0


def test_the_real_profiles_fit_their_targets_on_their_measured_costs():
    """stl10's grading budgets: under 15 minutes of training on 2 cores; stl10-gpu: the notebook's budgets."""
    cpu, gpu = load_profile("stl10"), load_profile("stl10-gpu")
    phases = ("method1", "method2", "method3", "clip")
    assert sum(expected_seconds(cpu, phase) for phase in phases) < 15 * 60
    assert gpu.grading_budgets == gpu.budgets and sum(expected_seconds(gpu, phase) for phase in phases) < 5 * 60
    assert cpu.calibration_warning() is not None and gpu.calibration_warning() is not None


def test_every_profile_limits_the_worker_memory_and_a_cuda_profile_allows_more():
    cpu, gpu = worker_limits(load_profile("stl10")).memory_bytes, worker_limits(load_profile("stl10-gpu")).memory_bytes
    assert cpu == Limits().memory_bytes and gpu == CUDA_MEMORY_BYTES > cpu


def test_malformed_costs_are_refused_naming_the_field(tmp_path):
    profile = _variant(tmp_path, costs={"clip": {"once": 1}})
    with pytest.raises(ProfileError, match=r"costs.clip needs numbers 'once' and 'per_epoch'"):
        training_call_seconds(profile, "clip")
    with pytest.raises(ValueError, match="unknown training phase 'method4'"):
        training_call_seconds(profile, "method4")
