"""Profile files: loading, errors, and what counts as a change that needs a new prepare."""

import json

import pytest

from autograder.profiles.profile import ProfileError, available_profiles, cache_root, load_profile, write_profile


def test_shipped_profiles_load():
    assert {"synthetic", "synthetic-full", "stl10"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.budgets.ae_epochs > 0 and profile.budgets.probe_epochs > 0


def test_stl10_ships_the_problem_set_thresholds_marked_uncalibrated():
    profile = load_profile("stl10")
    assert (profile.thresholds.method1, profile.thresholds.method2, profile.thresholds.clip) == (0.27, 0.40, 0.75)
    assert profile.thresholds.method3_below_method1
    assert not profile.calibrated


def test_synthetic_ships_calibrated_with_ten_runs():
    profile = load_profile("synthetic")
    assert profile.calibrated
    observed = profile.calibration["observed"]
    assert len(observed) == profile.calibration["runs"] == 10
    margin = profile.calibration["margin"]
    for key in ("method1", "method2", "clip"):
        assert getattr(profile.thresholds, key) <= min(run[key] for run in observed) - margin + 1e-9
    assert all(run["method3"] < run["method1"] < run["method2"] < run["clip"] for run in observed)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ProfileError, match="synthetic"):
        load_profile("nope")


def test_malformed_profile_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ProfileError, match="broken.json"):
        load_profile(broken)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ProfileError, match="incomplete.json"):
        load_profile(incomplete)


def test_fingerprint_ignores_thresholds_but_not_data(tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_text(load_profile("synthetic").path.read_text())
    profile = load_profile(copy)
    rethresholded = write_profile(profile, {"thresholds": {"method1": 0.1, "method2": 0.2, "clip": 0.3}})
    assert rethresholded.fingerprint() == profile.fingerprint()
    data = dict(profile.data, seed=profile.data["seed"] + 1)
    assert write_profile(profile, {"data": data}).fingerprint() != profile.fingerprint()


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PS7_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("PS7_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "ps7-autograder"
