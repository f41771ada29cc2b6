"""`calibrate --profile P --runs N`: where the accuracy thresholds come from.

Runs the reference through the same training runs and trusted probe the grader uses, with N seeds, and
writes the observed accuracies and thresholds (the worst reference run minus a margin) into the profile.
"""

from __future__ import annotations

import datetime
import math
import platform
import time

import torch
from safetensors.torch import load_file

from autograder.assignment.namespace import reference_namespace
from autograder.profiles.prepare import PreparedPaths, prepare
from autograder.profiles.profile import Profile, write_profile
from autograder.training import runs
from autograder.training.probe import accuracy, probe_accuracy

METRICS = ("method1", "method2", "method3", "clip")


def reference_accuracies(profile: Profile, seed: int, ns=None, data: runs.RunData | None = None) -> dict[str, float]:
    """Test accuracies of the reference on the profile's budget, for one seed."""
    ns = ns or reference_namespace(profile.name)
    data = data or runs.RunData.load(profile)
    labels = load_file(str(PreparedPaths(profile.cache_dir()).stl10_labels))
    budgets = profile.budgets

    def probed(features: dict) -> float:
        return probe_accuracy(
            features["train"], labels["train"], features["test"], labels["test"], budgets.probe_epochs, seed
        )

    image = profile.backbones["image"]["embedding_dim"]
    text = profile.backbones["text"]["dim"]
    return {
        "method1": probed(runs.autoencoder_features(ns, data, budgets.ae_epochs, seed)),
        "method2": accuracy(runs.supervised_logits(ns, data, budgets.probe_epochs, seed)["test"], labels["test"]),
        "method3": probed(runs.random_encoder_features(ns, data, seed)),
        "clip": probed(runs.clip_features(ns, data, budgets.clip_epochs, seed, image, text)),
    }


def _floor(value: float, step: float = 0.01) -> float:
    return math.floor(value / step + 1e-9) * step


def calibrate(profile: Profile, runs_count: int, margin: float = 0.05, first_seed: int = 0) -> Profile:
    prepare(profile)
    ns = reference_namespace(profile.name)
    data = runs.RunData.load(profile)
    observed = []
    for seed in range(first_seed, first_seed + runs_count):
        started = time.perf_counter()
        result = reference_accuracies(profile, seed, ns, data)
        result = {key: round(value, 4) for key, value in result.items()}
        observed.append({"seed": seed, **result, "seconds": round(time.perf_counter() - started, 1)})
        print(f"seed {seed}: " + ", ".join(f"{key} {result[key]:.3f}" for key in METRICS), flush=True)
    worst = {key: min(run[key] for run in observed) for key in METRICS}
    thresholds = {
        "method1": round(_floor(worst["method1"] - margin), 2),
        "method2": round(_floor(worst["method2"] - margin), 2),
        "clip": round(_floor(worst["clip"] - margin), 2),
        "method3_below_method1": True,
    }
    calibration = {
        "calibrated": True,
        "runs": runs_count,
        "margin": margin,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "ordering_held_in_every_run": all(
            run["method3"] < run["method1"] < run["method2"] < run["clip"] for run in observed
        ),
        "worst": worst,
        "observed": observed,
    }
    return write_profile(profile, {"thresholds": thresholds, "calibration": calibration})
