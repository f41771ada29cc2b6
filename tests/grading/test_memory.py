"""The trusted grader's memory limit: an allocation past it fails in the test that made it, the results file is
still complete and valid, and the limit is lifted when the grade ends."""

from __future__ import annotations

import resource
import textwrap
from pathlib import Path

import pytest

from autograder.grading.memory import GiB, MemoryLimit
from autograder.grading.plugin import GradingPlugin
from autograder.results.plugin import ResultsPlugin
from tests.results.test_schema import load_valid

SUITE = '''
    import pytest
    import torch


    @pytest.mark.points(1)
    def test_allocates_past_the_limit():
        """allocates"""
        probe = torch.empty(0, 10**8)
        weights = torch.zeros(probe.shape[1], 3)  # 1.2 GB: part of the probe a width of 10**8 would need
        assert weights.sum() == 0


    @pytest.mark.points(1)
    def test_after():
        """after"""
'''


def _private_memory() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmData in /proc/self/status")


def test_an_allocation_past_the_grader_limit_fails_its_test_and_leaves_valid_results(tmp_path: Path):
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    results_path = tmp_path / "results.json"
    before = resource.getrlimit(resource.RLIMIT_DATA)
    grading = GradingPlugin(None, "not needed here", memory_bytes=_private_memory() + GiB // 2)
    results = ResultsPlugin(results_path)
    try:
        code = pytest.main([str(tmp_path), "-p", "no:cacheprovider", "-p", "no:terminal"], plugins=[results, grading])
    finally:
        grading.close()
    assert code == pytest.ExitCode.TESTS_FAILED
    assert resource.getrlimit(resource.RLIMIT_DATA) == before, "the limit must be lifted after the grade"
    document = load_valid(results_path)
    allocates, after = document["tests"]
    assert allocates["score"] == 0 and "alloc" in allocates["output"].lower(), allocates
    assert after["status"] == "passed"


def test_the_limit_lowers_only_the_soft_limit_so_the_worker_can_set_its_own():
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    wanted = _private_memory() + 4 * GiB
    limit = MemoryLimit(wanted)
    limit.apply()
    try:
        assert resource.getrlimit(resource.RLIMIT_DATA) == (wanted, hard)
    finally:
        limit.restore()
    assert resource.getrlimit(resource.RLIMIT_DATA) == (soft, hard)
