"""`calibrate --profile P --runs N`: where the accuracy thresholds come from.

Runs the reference through the same training runs and trusted probe the grader uses, with N seeds, and
writes the observed accuracies and thresholds (the worst reference run minus a margin) into the profile.
"""

from __future__ import annotations

import datetime
import math
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict

import torch
from safetensors.torch import load_file

from autograder.assignment.namespace import reference_namespace
from autograder.profiles.prepare import PreparedPaths, prepare
from autograder.profiles.profile import Profile, load_profile, write_profile
from autograder.training import runs
from autograder.training.probe import accuracy, probe_accuracy

METRICS = ("method1", "method2", "method3", "clip")


def reference_accuracies(profile: Profile, seed: int) -> dict[str, float]:
    """Test accuracies of the reference on the profile's grading budgets, for one seed."""
    ns = reference_namespace(profile.name)
    data = runs.RunData.load(profile)
    labels = load_file(str(PreparedPaths(profile.cache_dir()).stl10_labels))
    budgets = profile.grading_budgets
    batch = budgets.batch_size

    def probed(features: dict) -> float:
        return probe_accuracy(
            features["train"], labels["train"], features["test"], labels["test"], budgets.probe_epochs, seed, batch
        )

    image = profile.backbones["image"]["embedding_dim"]
    text = profile.backbones["text"]["dim"]
    return {
        "method1": probed(runs.autoencoder_features(ns, data, budgets.ae_epochs, seed, batch)),
        "method2": accuracy(
            runs.supervised_logits(ns, data, labels["train"], budgets.probe_epochs, seed, batch)["test"], labels["test"]
        ),
        "method3": probed(runs.random_encoder_features(ns, data, seed)),
        "clip": probed(runs.clip_features(ns, data, budgets.clip_epochs, seed, image, text)),
    }


class CalibrationError(ValueError):
    """The reference runs cannot support thresholds that the reference always passes."""


def worst_runs(observed: list[dict]) -> dict[str, float]:
    """The lowest accuracy of Methods I, II and CLIP over the runs, and the highest of Method III (which
    must stay below Method I)."""
    worst = {key: min(run[key] for run in observed) for key in METRICS}
    worst["method3"] = max(run["method3"] for run in observed)
    return worst


def thresholds_from(worst: dict[str, float], margin: float) -> dict:
    """The worst runs (`worst_runs`) minus `margin`, floored to 0.01. Method III is graded against the Method I
    threshold, so every run's Method III must stay below it, or the budgets are too small to tell the two apart."""
    thresholds: dict = {key: round(_floor(worst[key] - margin), 2) for key in ("method1", "method2", "clip")}
    thresholds["method3_below_method1"] = True
    if worst["method3"] >= thresholds["method1"]:
        raise CalibrationError(
            f"a reference run reached {worst['method3']:.3f} with Method III (a frozen random encoder), not below "
            f"the Method I threshold {thresholds['method1']:.2f} these runs give: the grading budgets are too small "
            "to tell a trained autoencoder from a random one; train the autoencoder longer (ae_epochs)"
        )
    return thresholds


def _floor(value: float, step: float = 0.01) -> float:
    return math.floor(value / step + 1e-9) * step


def _one_run(profile_path: str, seed: int, threads: int | None) -> dict:
    """One seed, in a process of its own when `calibrate` runs several at once."""
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    result = reference_accuracies(load_profile(profile_path), seed)
    return {
        "seed": seed,
        **{key: round(value, 4) for key, value in result.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def calibrate(profile: Profile, runs_count: int, margin: float = 0.05, jobs: int = 1, first_seed: int = 0) -> Profile:
    """Seeds run `jobs` at a time, one thread each when parallel (no faster on an idle machine, but fair)."""
    prepare(profile)
    seeds = range(first_seed, first_seed + runs_count)
    threads = 1 if jobs > 1 else None
    context = multiprocessing.get_context("spawn")
    observed = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_one_run, str(profile.path), seed, threads) for seed in seeds]
        for future in as_completed(futures):
            run = future.result()
            observed.append(run)
            print(f"seed {run['seed']}: " + ", ".join(f"{key} {run[key]:.3f}" for key in METRICS), flush=True)
    observed.sort(key=lambda run: run["seed"])
    worst = worst_runs(observed)
    thresholds = thresholds_from(worst, margin)
    calibration = {
        "calibrated": True,
        "budgets": asdict(profile.grading_budgets),
        "runs": runs_count,
        "margin": margin,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {jobs} job(s) at a time, torch {torch.__version__}",
        "ordering_held_in_every_run": all(
            run["method3"] < run["method1"] < run["method2"] < run["clip"] for run in observed
        ),
        "worst": worst,
        "observed": observed,
    }
    return write_profile(profile, {"thresholds": thresholds, "calibration": calibration})
