"""Thresholds from calibration runs: the reference must pass every accuracy test it was calibrated on."""

from __future__ import annotations

import pytest

from autograder.profiles.calibrate import CalibrationError, thresholds_from, worst_runs


def _run(seed: int, method1: float, method2: float, method3: float, clip: float) -> dict:
    return {"seed": seed, "method1": method1, "method2": method2, "method3": method3, "clip": clip}


def test_thresholds_are_the_worst_run_minus_the_margin_floored():
    observed = [_run(0, 0.474, 0.786, 0.222, 0.967), _run(1, 0.419, 0.810, 0.132, 0.973)]
    assert worst_runs(observed) == {"method1": 0.419, "method2": 0.786, "method3": 0.222, "clip": 0.967}
    thresholds = thresholds_from(worst_runs(observed), margin=0.05)
    assert thresholds == {"method1": 0.36, "method2": 0.73, "clip": 0.91, "method3_below_method1": True}
    for run in observed:  # what the grading tests then check of each reference run
        assert run["method1"] >= thresholds["method1"] and run["method2"] >= thresholds["method2"]
        assert run["clip"] >= thresholds["clip"] and run["method3"] < thresholds["method1"]


def test_a_method_iii_run_at_the_method_i_threshold_refuses_to_calibrate():
    """Method III is graded against the Method I threshold: budgets that cannot separate them would make the
    reference fail, so nothing is written and the message says what to change."""
    observed = [_run(0, 0.45, 0.80, 0.30, 0.96), _run(1, 0.41, 0.81, 0.36, 0.97)]
    with pytest.raises(CalibrationError, match=r"reached 0\.360 with Method III.*threshold 0\.36.*ae_epochs"):
        thresholds_from(worst_runs(observed), margin=0.05)
