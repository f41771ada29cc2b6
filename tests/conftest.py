"""Shared fixtures. The prepared synthetic profile is made once per test session (about a minute)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.profiles.prepare import prepare
from autograder.profiles.profile import Profile, load_profile


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the prepared synthetic profile; `PS7_TEST_CACHE` reuses one across runs."""
    root = Path(os.environ.get("PS7_TEST_CACHE") or tmp_path_factory.mktemp("ps7-cache"))
    previous = os.environ.get("PS7_CACHE")
    os.environ["PS7_CACHE"] = str(root)
    try:
        prepare(load_profile("synthetic"))
    finally:
        if previous is None:
            del os.environ["PS7_CACHE"]
        else:
            os.environ["PS7_CACHE"] = previous
    return root


@pytest.fixture
def synthetic(synthetic_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    """The prepared synthetic profile, with PS7_CACHE pointing at it for this test."""
    monkeypatch.setenv("PS7_CACHE", str(synthetic_cache))
    return load_profile("synthetic")
