"""The corpus itself: as large as promised, well formed, and in step with the suites' markers.

The grades are in test_mutants_7_1.py, test_mutants_7_2.py and test_variants.py (one file each, so that the
test processes share them out: `make test` distributes whole files).
"""

from __future__ import annotations

from tests.corpus.harness import bundles, component_points, training_tests
from tests.corpus.mutants_7_1 import MUTANTS as MUTANTS_7_1
from tests.corpus.mutants_7_1 import VARIANTS as VARIANTS_7_1
from tests.corpus.mutants_7_2 import MUTANTS as MUTANTS_7_2
from tests.corpus.mutants_7_2 import VARIANTS as VARIANTS_7_2

MUTANTS = [*MUTANTS_7_1, *MUTANTS_7_2]
VARIANTS = [*VARIANTS_7_1, *VARIANTS_7_2]


def test_the_corpus_is_as_large_as_promised():
    assert len(MUTANTS) >= 25 and len(VARIANTS) >= 5
    assert len({mutant.name for mutant in MUTANTS}) == len(MUTANTS)
    assert {mutant.component for mutant in MUTANTS} == set(component_points())
    for mutant in MUTANTS:
        assert mutant.failing and all(number.startswith(mutant.component + ".") for number in mutant.failing)
        if mutant.breaks_learning:
            assert set(mutant.failing) & set(training_tests()[mutant.component]), mutant.name
    assert all(variant.trains is None or variant.trains in training_tests() for variant in VARIANTS)


# DESIGN.md section 1: the problem set's points per component.
DESIGN_POINTS = {
    "7.1.1": 1.0,
    "7.1.2": 1.0,
    "7.1.3": 1.0,
    "7.1.4": 1.0,
    "7.1.5": 1.0,
    "7.2.1": 1.0,
    "7.2.2": 2.0,
    "7.2.3": 1.0,
    "7.2.4": 1.0,
}


def test_the_suites_markers_give_each_component_the_designs_points():
    assert component_points() == DESIGN_POINTS


def test_every_component_that_trains_has_a_training_test():
    assert set(training_tests()) == {"7.1.3", "7.1.4", "7.2.2"}
    for component, numbers in training_tests().items():
        assert numbers and all(number.startswith(component + ".") for number in numbers), (component, numbers)


def test_each_mutant_that_shows_without_training_is_graded_in_one_bundle_of_distinct_components():
    for family in (MUTANTS_7_1, MUTANTS_7_2):
        found = bundles(family)
        members = [mutant.name for bundle in found for mutant in bundle]
        assert sorted(members) == sorted(mutant.name for mutant in family if not mutant.breaks_learning)
        for bundle in found:
            assert len({mutant.component for mutant in bundle}) == len(bundle), [m.name for m in bundle]
        assert len(found) < len(members), "bundling grades fewer notebooks than mutants"
