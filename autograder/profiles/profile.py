"""Profiles: which data and backbones, which training budgets, which thresholds.

A profile is a small JSON file beside this module (`synthetic.json`, `stl10.json`, ...) or any path.
JSON rather than TOML because `calibrate` writes thresholds back into it with the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

PROFILE_DIR = Path(__file__).parent
DEFAULT_PROFILE = "synthetic"
PUBLIC_PROFILE = "public"  # what `check` runs on: no pretrained backbone, prepared in seconds
NOTEBOOK_BATCH_SIZE = 128  # the provided `unlabeled_loader` and `train_loader`
DEFAULT_DEADLINE_MINUTES = 15.0  # a whole grade, worker included (Gradescope's default limit is 40 min)
_PREPARING_CODE = (
    "data/synthetic.py",
    "data/stl10.py",
    "data/flickr8k.py",
    "profiles/backbones.py",
    "profiles/prepare.py",
)


class ProfileError(ValueError):
    """A profile file is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Budgets:
    """Training budgets: the notebook's (through the seam), and the grader's when it trains a student's code.

    `batch_size` is the minibatch of the grader's autoencoder, classifier and linear-probe runs: smaller
    batches take more optimiser steps per epoch for about the same time per epoch on a CPU, so a calibrated
    profile can grade with fewer epochs. The notebook's own loaders use 128 whatever it says. CLIP always
    trains with the assignment's `CLIP_CONFIG` batch, which is part of what its loss means."""

    ae_epochs: int
    probe_epochs: int
    clip_epochs: int
    unlabeled_subset: int | None
    batch_size: int = NOTEBOOK_BATCH_SIZE


@dataclass(frozen=True)
class Thresholds:
    method1: float
    method2: float
    clip: float
    method3_below_method1: bool = True
    # The share of held-out images a trained CLIP matches to their own caption (`grading.retrieval.caption_matching`);
    # None where only the problem set's thresholds are known (the real profiles): then it is reported, not graded.
    clip_matching: float | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    seed: int
    data: dict
    backbones: dict
    budgets: Budgets  # what the notebook runs under this profile
    grading_budgets: Budgets  # what the grader trains with, on which the thresholds are calibrated
    thresholds: Thresholds | None  # None in the copy the worker reads (`worker_copy`)
    calibration: dict
    example_queries: tuple[str, ...]
    raw: dict
    deadline_minutes: float = DEFAULT_DEADLINE_MINUTES  # the grade-wide deadline (autograder.grading.deadline)

    @property
    def calibrated(self) -> bool:
        """The thresholds were measured (`calibrate`) on the grading budgets in use now."""
        return bool(self.calibration.get("calibrated")) and self.calibration.get("budgets") == asdict(
            self.grading_budgets
        )

    def reference_range(self, metric: str) -> tuple[float, float] | None:
        """The lowest and highest accuracy the reference reached on `metric` in the calibration runs on the grading
        budgets in use now, for a failure message to say what a correct submission reaches; None without them."""
        runs = [run[metric] for run in self.calibration.get("observed", ()) if metric in run]
        return (min(runs), max(runs)) if self.calibrated and runs else None

    def calibration_warning(self) -> str | None:
        """What every report says when the accuracy thresholds were not measured on the grading budgets; nothing
        for a profile without thresholds (`public`), which runs no accuracy test."""
        if self.calibrated or self.thresholds is None:
            return None
        note = self.calibration.get("note") or "run `python -m autograder calibrate` after changing the budgets"
        return (
            f"Profile {self.name!r}: the accuracy thresholds were not calibrated on its grading budgets "
            f"({_describe(self.grading_budgets)}), so accuracy tests may be too strict or too lenient. {note}"
        )

    def fingerprint(self) -> str:
        """Changes exactly when what `prepare` makes would change: the profile's data and backbones, and the
        code that generates them (not thresholds or budgets). The worker's copy, which lacks the data's seed,
        carries the fingerprint of the profile it was made from."""
        if PREPARED_FINGERPRINT in self.raw:
            return str(self.raw[PREPARED_FINGERPRINT])
        prepared = {"data": self.data, "backbones": self.backbones, "seed": self.seed}
        digest = hashlib.sha256(json.dumps(prepared, sort_keys=True).encode())
        for module in _PREPARING_CODE:
            digest.update((PROFILE_DIR.parent / module).read_bytes())
        return digest.hexdigest()[:16]

    def cache_dir(self) -> Path:
        return cache_root() / self.name


def _describe(budgets: Budgets) -> str:
    return (
        f"autoencoder {budgets.ae_epochs} epochs, probes {budgets.probe_epochs} epochs, CLIP {budgets.clip_epochs} "
        f"epochs, batches of {budgets.batch_size}"
    )


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def cache_root() -> Path:
    """`PS7_CACHE`, else the per-user cache folder."""
    if os.environ.get("PS7_CACHE"):
        return Path(os.environ["PS7_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ps7-autograder"


def profile_path(name_or_path: str | os.PathLike) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".json":
        return candidate
    path = PROFILE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ProfileError(f"unknown profile {name_or_path!r}; available: {', '.join(available_profiles())}")
    return path


def load_profile(name_or_path: str | os.PathLike = DEFAULT_PROFILE) -> Profile:
    path = profile_path(name_or_path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ProfileError(f"profile file not found: {path}") from error
    except json.JSONDecodeError as error:
        raise ProfileError(f"{path}: not valid JSON ({error})") from error
    try:
        profile = Profile(
            name=raw["name"],
            path=path,
            description=raw.get("description", ""),
            seed=int(raw.get("seed", 0)),
            data=raw["data"],
            backbones=raw["backbones"],
            budgets=Budgets(**raw["budgets"]),
            grading_budgets=Budgets(**raw.get("grading_budgets", raw["budgets"])),
            thresholds=Thresholds(**raw["thresholds"]) if "thresholds" in raw else None,
            calibration=raw.get("calibration", {}),
            example_queries=tuple(raw.get("example_queries", ())),
            raw=raw,
            deadline_minutes=float(raw.get("deadline_minutes", DEFAULT_DEADLINE_MINUTES)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{path}: missing or unexpected field ({error})") from error
    if not profile.deadline_minutes > 0:
        raise ProfileError(f"{path}: deadline_minutes must be a positive number, got {profile.deadline_minutes!r}")
    if profile.budgets.batch_size != NOTEBOOK_BATCH_SIZE:
        raise ProfileError(
            f"{path}: budgets.batch_size must be {NOTEBOOK_BATCH_SIZE}, the batch of the notebook's own loaders; "
            "the grader's batch is grading_budgets.batch_size"
        )
    return profile


def write_profile(profile: Profile, updates: dict) -> Profile:
    """Rewrite the profile file with some top-level sections replaced (used by `calibrate`)."""
    raw = {**profile.raw, **updates}
    profile.path.write_text(json.dumps(raw, indent=2) + "\n")
    return load_profile(profile.path)


WITHHELD_FROM_WORKER = ("thresholds", "calibration")
PREPARED_FINGERPRINT = "prepared_fingerprint"  # set in the worker's copy only (`worker_copy`)


def worker_copy(profile: Profile, folder: Path) -> Path:
    """The profile without its thresholds and calibration, for the sandboxed worker: it needs the data and
    the budgets, and has no business knowing what accuracy passes. The synthetic data's seed goes too (the
    generator would regenerate the test labels from it); the copy records the fingerprint of what was
    prepared instead, which is all the worker checks the prepared cache against."""
    raw = {key: value for key, value in profile.raw.items() if key not in WITHHELD_FROM_WORKER}
    raw["data"] = {key: value for key, value in profile.data.items() if key != "seed"}
    raw[PREPARED_FINGERPRINT] = profile.fingerprint()
    path = folder / f"{profile.name}.json"
    path.write_text(json.dumps(raw, indent=2) + "\n")
    return path
