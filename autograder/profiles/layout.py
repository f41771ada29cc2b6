"""Where a prepared profile lives in its cache, and whether it is current: read by the grader, the worker and
`prepare` alike, without importing torch (a `check` starts its worker before the grader imports torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autograder.profiles.profile import Profile

# The folder STL-10's archive unpacks to, as `autograder.data.stl10` (which imports torch) names it;
# tests/profiles/test_layout.py checks that the two agree.
STL10_FOLDER = "stl10_binary"


class NotPreparedError(RuntimeError):
    """Grading asked for a profile whose cache has not been made."""


@dataclass(frozen=True)
class PreparedPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def image_weights(self) -> Path:
        return self.root / "backbones" / "image.safetensors"

    @property
    def text_model(self) -> Path:
        return self.root / "backbones" / "text"

    @property
    def stl10_images(self) -> Path:
        return self.root / "tensors" / "stl10_images.safetensors"

    @property
    def stl10_labels(self) -> Path:
        """Kept apart from the images: the sandboxed worker may read images, never test labels."""
        return self.root / "tensors" / "stl10_labels.safetensors"

    @property
    def clip_images(self) -> Path:
        return self.root / "tensors" / "clip_images.safetensors"

    @property
    def clip_pairs(self) -> Path:
        return self.root / "tensors" / "clip_pairs.json"

    @property
    def text_features(self) -> Path:
        return self.root / "tensors" / "text_features.safetensors"


def prepared_manifest(profile: Profile) -> dict:
    """The manifest of a prepared profile, or a NotPreparedError that says which command makes it."""
    paths = PreparedPaths(profile.cache_dir())
    command = f"python -m autograder prepare --profile {profile.name}"
    if not paths.manifest.is_file():
        raise NotPreparedError(f"profile {profile.name!r} is not prepared in {paths.root}; run `{command}`")
    manifest = json.loads(paths.manifest.read_text())
    if manifest.get("fingerprint") != profile.fingerprint():
        raise NotPreparedError(f"profile {profile.name!r} changed since it was prepared; run `{command}` again")
    return manifest
