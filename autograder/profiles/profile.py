"""Profiles: which data and backbones, which training budgets, which thresholds.

A profile is a small JSON file beside this module (`synthetic.json`, `stl10.json`, ...) or any path.
JSON rather than TOML because `calibrate` writes thresholds back into it with the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PROFILE_DIR = Path(__file__).parent
DEFAULT_PROFILE = "synthetic"
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
    """Training budgets, shared by the notebook (through the seam) and the grader."""

    ae_epochs: int
    probe_epochs: int
    clip_epochs: int
    unlabeled_subset: int | None
    batch_size: int = 128
    clip_batch_size: int = 32


@dataclass(frozen=True)
class Thresholds:
    method1: float
    method2: float
    clip: float
    method3_below_method1: bool = True


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    seed: int
    data: dict
    backbones: dict
    budgets: Budgets
    thresholds: Thresholds | None  # None in the copy the worker reads (`worker_copy`)
    calibration: dict
    example_queries: tuple[str, ...]
    raw: dict

    @property
    def calibrated(self) -> bool:
        return bool(self.calibration.get("calibrated"))

    def fingerprint(self) -> str:
        """Changes exactly when what `prepare` makes would change: the profile's data and backbones, and the
        code that generates them (not thresholds or budgets)."""
        prepared = {"data": self.data, "backbones": self.backbones, "seed": self.seed}
        digest = hashlib.sha256(json.dumps(prepared, sort_keys=True).encode())
        for module in _PREPARING_CODE:
            digest.update((PROFILE_DIR.parent / module).read_bytes())
        return digest.hexdigest()[:16]

    def cache_dir(self) -> Path:
        return cache_root() / self.name


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
        return Profile(
            name=raw["name"],
            path=path,
            description=raw.get("description", ""),
            seed=int(raw.get("seed", 0)),
            data=raw["data"],
            backbones=raw["backbones"],
            budgets=Budgets(**raw["budgets"]),
            thresholds=Thresholds(**raw["thresholds"]) if "thresholds" in raw else None,
            calibration=raw.get("calibration", {}),
            example_queries=tuple(raw.get("example_queries", ())),
            raw=raw,
        )
    except (KeyError, TypeError) as error:
        raise ProfileError(f"{path}: missing or unexpected field ({error})") from error


def write_profile(profile: Profile, updates: dict) -> Profile:
    """Rewrite the profile file with some top-level sections replaced (used by `calibrate`)."""
    raw = {**profile.raw, **updates}
    profile.path.write_text(json.dumps(raw, indent=2) + "\n")
    return load_profile(profile.path)


WITHHELD_FROM_WORKER = ("thresholds", "calibration")


def worker_copy(profile: Profile, folder: Path) -> Path:
    """The profile without its thresholds and calibration, for the sandboxed worker: it needs the data and
    the budgets, and has no business knowing what accuracy passes."""
    raw = {key: value for key, value in profile.raw.items() if key not in WITHHELD_FROM_WORKER}
    path = folder / f"{profile.name}.json"
    path.write_text(json.dumps(raw, indent=2) + "\n")
    return path
