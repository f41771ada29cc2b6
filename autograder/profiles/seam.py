"""What the notebook's provided code takes from a prepared profile when `PS7_PROFILE` is set.

The notebook builds the same object itself on Colab (`colab_setup`), with downloads instead of the cache;
the grader's worker runs the same provided code, so there is one definition of data loading and backbones.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

from autograder.profiles.prepare import PreparedPaths, prepared_manifest
from autograder.profiles.profile import load_profile


class _LazyTextCache:
    """Loads the cached text features on first use: most grading runs never touch the text encoder."""

    def __init__(self, path: Path):
        self.path = path
        self.cache = None

    def __call__(self, input_ids, attention_mask):
        if self.cache is None:
            from autograder.profiles.text_cache import TextFeatureCache

            self.cache = TextFeatureCache.load(self.path)
        return self.cache.lookup(input_ids, attention_mask)


def notebook_setup(name: str) -> SimpleNamespace:
    from autograder.profiles.backbones import ImageBackboneSpec, build_resnet

    profile = load_profile(name)
    manifest = prepared_manifest(profile)
    paths = PreparedPaths(profile.cache_dir())
    image = profile.backbones["image"]
    return SimpleNamespace(
        name=profile.name,
        profile_path=str(profile.path),  # the grader's training probes load the prepared images of this profile
        seed=profile.seed,
        stl10_root=manifest["stl10_root"],
        flickr8k_root=manifest["flickr8k_root"],
        unlabeled_subset=profile.budgets.unlabeled_subset,
        ae_epochs=profile.budgets.ae_epochs,
        probe_epochs=profile.budgets.probe_epochs,
        clip_epochs=profile.budgets.clip_epochs,
        image_backbone=partial(
            build_resnet, ImageBackboneSpec(image["arch"], image["embedding_dim"]), paths.image_weights
        ),
        text_model=str(paths.text_model),
        image_embedding=image["embedding_dim"],
        text_embedding=profile.backbones["text"]["dim"],
        cached_text_features=_LazyTextCache(paths.text_features),
        example_queries=list(profile.example_queries),
    )
