"""Shared fixtures. The prepared synthetic profile is made once per test run (about a minute), shared by
the parallel test processes of pytest-xdist (the first one prepares it while the others wait)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

from autograder.profiles.prepare import prepare
from autograder.profiles.profile import Profile, load_profile


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the prepared synthetic profile; `PS7_TEST_CACHE` reuses one across runs."""
    if os.environ.get("PS7_TEST_CACHE"):
        root = Path(os.environ["PS7_TEST_CACHE"])
    elif os.environ.get("PYTEST_XDIST_TESTRUNUID"):
        # Common to all workers of this run, and outside pytest's own temporary folder, whose permissions any
        # pytest session starting on the machine resets to owner-only: the sandbox user must reach the cache.
        root = Path(tempfile.gettempdir()) / f"ps7-test-cache-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    else:
        root = tmp_path_factory.mktemp("ps7-cache")
    root.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("PS7_CACHE")
    os.environ["PS7_CACHE"] = str(root)
    try:
        with open(root.parent / f"{root.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
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
