"""Thresholds from calibration runs: the reference must pass every accuracy test it was calibrated on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.profiles.calibrate import (
    CalibrationError,
    calibrate,
    smallest_clip_gain,
    thresholds_from,
    worst_runs,
)
from autograder.profiles.profile import load_profile


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


def _run(
    seed: int, method1: float, method2: float, method3: float, clip: float, matching: float = 0.65, untrained=0.28
) -> dict:
    return {
        "seed": seed,
        "method1": method1,
        "method2": method2,
        "method3": method3,
        "clip": clip,
        "clip_matching": matching,
        "clip_untrained": untrained,
    }


def test_thresholds_are_the_worst_run_minus_the_margin_floored():
    observed = [_run(0, 0.474, 0.786, 0.222, 0.467, 0.641, 0.271), _run(1, 0.419, 0.810, 0.132, 0.473, 0.688, 0.276)]
    assert worst_runs(observed) == {
        "method1": 0.419,
        "method2": 0.786,
        "method3": 0.222,
        "clip": 0.467,
        "clip_matching": 0.641,
        "clip_untrained": 0.276,  # the highest: what CLIP training must rise above
    }
    thresholds = thresholds_from(worst_runs(observed), margin=0.05)
    assert thresholds == {
        "method1": 0.36,
        "method2": 0.73,
        "clip": 0.41,
        "clip_matching": 0.59,
        "method3_below_method1": True,
    }
    for run in observed:  # what the grading tests then check of each reference run
        assert run["method1"] >= thresholds["method1"] and run["method2"] >= thresholds["method2"]
        assert run["clip"] >= thresholds["clip"] and run["method3"] < thresholds["method1"]
        assert run["clip_matching"] >= thresholds["clip_matching"]
    assert smallest_clip_gain(observed) == pytest.approx(0.467 - 0.271)


def test_a_method_iii_run_at_the_method_i_threshold_refuses_to_calibrate():
    """Method III is graded against the Method I threshold: budgets that cannot separate them would make the
    reference fail, so nothing is written and the message says what to change."""
    observed = [_run(0, 0.45, 0.80, 0.30, 0.96), _run(1, 0.41, 0.81, 0.36, 0.97)]
    with pytest.raises(CalibrationError, match=r"reached 0\.360 with Method III.*threshold 0\.36.*ae_epochs"):
        thresholds_from(worst_runs(observed), margin=0.05)


@pytest.mark.slow
def test_an_interrupted_calibration_resumes_from_its_log(synthetic, tmp_path, capsys):
    """Real reference runs on one-epoch budgets: the first call stands for a calibration stopped after one run
    (its log also ends in a line cut short), the second finishes the other run only and writes thresholds from
    both, saying that it resumed and how long it expects the rest to take."""
    raw = json.loads(synthetic.path.read_text())
    raw["grading_budgets"].update(ae_epochs=1, probe_epochs=1, clip_epochs=1)
    profile = load_profile(write_json(tmp_path / "synthetic.json", raw))
    log = tmp_path / "runs.jsonl"
    try:
        calibrate(profile, 1, log=log)
    except CalibrationError:  # one-epoch budgets may not separate Method III from Method I; the run is kept
        pass
    first = log.read_text()
    assert [json.loads(line)["seed"] for line in first.splitlines()] == [0]
    log.write_text(first + '{"seed": 1, "meth')
    capsys.readouterr()
    try:
        calibrated = calibrate(load_profile(profile.path), 2, log=log)
    except CalibrationError:
        calibrated = None
    printed = capsys.readouterr().out
    assert "resuming: 1 of 2 runs were finished earlier" in printed
    assert "expected duration: about" in printed and "from the runs finished earlier" in printed
    lines = log.read_text().splitlines()
    assert lines[:2] == [first.strip(), '{"seed": 1, "meth']  # the earlier run was not made again
    assert json.loads(lines[2])["seed"] == 1 and len(lines) == 3
    if calibrated is not None:
        assert [run["seed"] for run in calibrated.calibration["observed"]] == [0, 1]
        assert calibrated.calibration["observed"][0] == json.loads(first)
