"""The corpus itself: as large as promised, well formed, and in step with the suites' training tests.

The grades are in test_mutants_7_1.py, test_mutants_7_2.py and test_variants.py (one file each, so that the
test processes share them out: `make test` distributes whole files).
"""

from __future__ import annotations

import pytest

from autograder.grading.grade import SUITE_DIR
from tests.corpus.harness import COMPONENT_POINTS, TRAINING_TESTS, component_of
from tests.corpus.mutants_7_1 import MUTANTS as MUTANTS_7_1
from tests.corpus.mutants_7_1 import VARIANTS as VARIANTS_7_1
from tests.corpus.mutants_7_2 import MUTANTS as MUTANTS_7_2
from tests.corpus.mutants_7_2 import VARIANTS as VARIANTS_7_2

MUTANTS = [*MUTANTS_7_1, *MUTANTS_7_2]
VARIANTS = [*VARIANTS_7_1, *VARIANTS_7_2]


def test_the_corpus_is_as_large_as_promised():
    assert len(MUTANTS) >= 25 and len(VARIANTS) >= 5
    assert len({mutant.name for mutant in MUTANTS}) == len(MUTANTS)
    assert {mutant.component for mutant in MUTANTS} == set(COMPONENT_POINTS)
    for mutant in MUTANTS:
        assert mutant.failing and all(number.startswith(mutant.component + ".") for number in mutant.failing)
        if mutant.breaks_learning:
            assert set(mutant.failing) & set(TRAINING_TESTS[mutant.component]), mutant.name
    assert all(variant.trains is None or variant.trains in TRAINING_TESTS for variant in VARIANTS)


class _TrainingTests:
    """Collects the number of every suite test marked `training`."""

    def __init__(self) -> None:
        self.numbers: dict[str, list[str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if item.get_closest_marker("training") is not None:
                number = item.get_closest_marker("number").args[0]
                self.numbers.setdefault(component_of(number), []).append(number)


def test_training_tests_are_the_ones_marked():
    collector = _TrainingTests()
    args = [str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR), "--collect-only", "-q"]
    assert pytest.main([*args, "-p", "no:cacheprovider", "--import-mode=importlib"], plugins=[collector]) == 0
    assert {component: sorted(numbers) for component, numbers in collector.numbers.items()} == TRAINING_TESTS
