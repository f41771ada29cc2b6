"""`calibrate --profile P --runs N`: where the accuracy thresholds come from.

Runs the reference through the same training runs and trusted probe the grader uses, with N seeds, and
writes the observed accuracies and thresholds (the worst reference run minus a margin) into the profile.

On real data a run takes an hour or more on a CPU, so calibration says first how long it expects to take
(from earlier runs of the same budgets, else from a timing pass of one epoch of every phase), shows each
phase of each run as it ends, and keeps every finished run in a log beside the prepared profile: an
interrupted calibration started again with the same budgets resumes where it stopped. Runs depend on the
budgets, the seed and the code, not on the machine (up to floating-point noise, which the margin covers),
so the runs may be made on a GPU for thresholds that a CPU grader then applies to the same budgets.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from autograder.assignment.namespace import reference_namespace
from autograder.grading import retrieval
from autograder.profiles.prepare import PreparedPaths, prepare
from autograder.profiles.profile import Budgets, Profile, load_profile, write_profile
from autograder.training import runs
from autograder.training.probe import accuracy, fit_and_score

METRICS = ("method1", "method2", "method3", "clip", "clip_matching", "clip_untrained")
# The metrics whose worst run is the highest: Method III must stay below Method I, and the untrained image encoder
# is what CLIP training must rise above.
_WORST_IS_HIGHEST = ("method3", "clip_untrained")
_THRESHOLDED = ("method1", "method2", "clip", "clip_matching")


def reference_accuracies(
    profile: Profile, seed: int, budgets: Budgets | None = None, report: Callable[[str, float], None] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Test accuracies of the reference on `budgets` (the profile's grading budgets by default), for one seed,
    and the seconds each phase took; `report(phase, seconds)` is told as each phase ends. Besides the graded
    measures, `clip_untrained` is the probe of CLIP's image encoder before any training: what CLIP must rise above."""
    ns = reference_namespace(profile.name)
    data = runs.RunData.load(profile)
    labels = load_file(str(PreparedPaths(profile.cache_dir()).stl10_labels))
    budgets = budgets or profile.grading_budgets
    batch = budgets.batch_size
    seconds: dict[str, float] = {}

    def timed(phase: str, work: Callable[[], dict[str, float]]) -> dict[str, float]:
        started = time.perf_counter()
        result = work()
        seconds[phase] = time.perf_counter() - started
        if report is not None:
            report(phase, seconds[phase])
        return result

    def probed(features: dict) -> float:
        return fit_and_score(
            features["train"], labels["train"], features["test"], labels["test"], budgets.probe_epochs, seed, batch
        )

    image = profile.backbones["image"]["embedding_dim"]
    text = profile.backbones["text"]["dim"]

    def clip() -> dict[str, float]:
        model, _ = runs.train_clip_model(ns, data, budgets.clip_epochs, seed, image, text)
        return {
            "clip": probed(runs.image_encoder_features(ns, model.image_encoder, data)),
            "clip_matching": retrieval.caption_matching(ns, model, data.clip_val, data.clip_val_captions),
        }

    phases: dict[str, Callable[[], dict[str, float]]] = {
        "method1": lambda: {"method1": probed(runs.autoencoder_features(ns, data, budgets.ae_epochs, seed, batch))},
        "method2": lambda: {
            "method2": accuracy(
                runs.supervised_logits(ns, data, labels["train"], budgets.probe_epochs, seed, batch)["test"],
                labels["test"],
            )
        },
        "method3": lambda: {"method3": probed(runs.random_encoder_features(ns, data, seed))},
        "clip_untrained": lambda: {"clip_untrained": probed(runs.image_encoder_features(ns, ns.ImageEncoder(), data))},
        "clip": clip,
    }
    results: dict[str, float] = {}
    for phase, work in phases.items():
        results.update(timed(phase, work))
    return results, seconds


def _epochs_of(phase: str, budgets: Budgets) -> tuple[int, int]:
    """(epochs that scale the phase's time, probe epochs on its features) under `budgets`."""
    return {
        "method1": (budgets.ae_epochs, budgets.probe_epochs),
        "method2": (budgets.probe_epochs, 0),
        "method3": (0, budgets.probe_epochs),
        "clip_untrained": (0, budgets.probe_epochs),
        "clip": (budgets.clip_epochs, budgets.probe_epochs),
    }[phase]


def estimated_run_seconds(profile: Profile, seed: int = 0) -> float:
    """One run's seconds on the grading budgets, extrapolated from a timing pass of one epoch of every phase
    (training and probe alike): each phase's time is taken to grow with its epochs."""
    budgets = profile.grading_budgets
    one_epoch = replace(budgets, ae_epochs=1, probe_epochs=1, clip_epochs=1)
    _, seconds = reference_accuracies(profile, seed, one_epoch)
    return sum(seconds[phase] * max(1, max(_epochs_of(phase, budgets))) for phase in seconds)


class CalibrationError(ValueError):
    """The reference runs cannot support thresholds that the reference always passes."""


def worst_runs(observed: list[dict]) -> dict[str, float]:
    """The lowest accuracy of Methods I, II and CLIP over the runs, and the highest of Method III (which
    must stay below Method I) and of the untrained image encoder."""
    return {
        key: (max if key in _WORST_IS_HIGHEST else min)(run[key] for run in observed) for key in METRICS
    }


def smallest_clip_gain(observed: list[dict]) -> float:
    """How far CLIP training raised the probe of its image encoder, in the run where it raised it least."""
    return min(run["clip"] - run["clip_untrained"] for run in observed)


def thresholds_from(worst: dict[str, float], margin: float) -> dict:
    """The worst runs (`worst_runs`) minus `margin`, floored to 0.01. Method III is graded against the Method I
    threshold, so every run's Method III must stay below it, or the budgets are too small to tell the two apart."""
    thresholds: dict = {key: round(_floor(worst[key] - margin), 2) for key in _THRESHOLDED}
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

    def report(phase: str, seconds: float) -> None:
        print(f"  seed {seed}: {phase} done in {_duration(seconds)}", flush=True)

    result, _ = reference_accuracies(load_profile(profile_path), seed, report=report)
    return {
        "seed": seed,
        **{key: round(value, 4) for key, value in result.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_log(profile: Profile) -> Path:
    """Where finished runs are kept: beside the prepared profile, one file per version of the profile and its
    grading budgets, so that a resumed calibration never mixes runs of different budgets or code."""
    key = hashlib.sha256(
        json.dumps([profile.fingerprint(), asdict(profile.grading_budgets)], sort_keys=True).encode()
    ).hexdigest()[:16]
    return profile.cache_dir() / "calibration" / f"runs-{key}.jsonl"


def _logged_runs(log: Path) -> dict[int, dict]:
    runs_by_seed: dict[int, dict] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                run = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the interruption
                continue
            if isinstance(run, dict) and isinstance(run.get("seed"), int) and all(key in run for key in METRICS):
                runs_by_seed[run["seed"]] = run
    return runs_by_seed


def _append(log: Path, run: dict) -> None:
    """One line per run, written whole and synced; a line an interruption cut short is ended first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cut_short = log.is_file() and log.stat().st_size > 0 and not log.read_bytes().endswith(b"\n")
    with log.open("a") as out:
        out.write(("\n" if cut_short else "") + json.dumps(run) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def calibrate(
    profile: Profile,
    runs_count: int,
    margin: float = 0.05,
    jobs: int = 1,
    first_seed: int = 0,
    log: Path | None = None,
) -> Profile:
    """Seeds run `jobs` at a time, one thread each when parallel (no faster on an idle machine, but fair);
    finished runs are kept in `log` (default `run_log(profile)`) and not run again."""
    prepare(profile)
    seeds = range(first_seed, first_seed + runs_count)
    log = log or run_log(profile)
    done = {seed: run for seed, run in _logged_runs(log).items() if seed in seeds}
    pending = [seed for seed in seeds if seed not in done]
    if done:
        print(f"resuming: {len(done)} of {runs_count} runs were finished earlier ({log})", flush=True)
    if pending:
        per_run = (
            sum(run["seconds"] for run in done.values()) / len(done) if done else estimated_run_seconds(profile)
        )
        total = per_run * math.ceil(len(pending) / jobs)
        how = "the runs finished earlier" if done else "a timing pass of one epoch of every phase"
        print(
            f"expected duration: about {_duration(total)} for {len(pending)} run(s), {jobs} at a time "
            f"({_duration(per_run)} a run, from {how})",
            flush=True,
        )
    threads = 1 if jobs > 1 else None
    context = multiprocessing.get_context("spawn")
    observed = list(done.values())
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_one_run, str(profile.path), seed, threads) for seed in pending]
        for future in tqdm(as_completed(futures), total=len(futures), desc="calibration runs", unit="run"):
            run = future.result()
            _append(log, run)
            observed.append(run)
            tqdm.write(
                f"seed {run['seed']}: " + ", ".join(f"{key} {run[key]:.3f}" for key in METRICS)
                + f" ({_duration(run['seconds'])})"
            )
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
        "ordering_held_in_every_run": all(run["method3"] < run["method1"] < run["method2"] for run in observed),
        "smallest_clip_gain_over_untrained": round(smallest_clip_gain(observed), 4),
        "worst": worst,
        "observed": observed,
    }
    return write_profile(profile, {"thresholds": thresholds, "calibration": calibration})
