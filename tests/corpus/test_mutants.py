"""Each mutant loses points in its own component only, in the tests it names; each variant scores full.

Grading runs every test that does not train (public and hidden) for every entry, which shows that the
other components keep full marks; the training tests run for the component of each mutant that breaks
learning and of each variant whose training code differs from the reference's (DESIGN.md section 2:
training only where a test needs it).
"""

from __future__ import annotations

import pytest

from tests.corpus.harness import (
    COMPONENT_POINTS,
    Mutant,
    Variant,
    build_notebook,
    explain,
    failed_numbers,
    graded,
    scores_by_component,
)
from tests.corpus.mutants_7_1 import MUTANTS as MUTANTS_7_1
from tests.corpus.mutants_7_1 import VARIANTS as VARIANTS_7_1
from tests.corpus.mutants_7_2 import MUTANTS as MUTANTS_7_2
from tests.corpus.mutants_7_2 import VARIANTS as VARIANTS_7_2

MUTANTS = [*MUTANTS_7_1, *MUTANTS_7_2]

# A grade per entry, two for those that train: minutes each on a busy machine.
pytestmark = pytest.mark.timeout(1800)
VARIANTS = [*VARIANTS_7_1, *VARIANTS_7_2]


def test_the_corpus_is_as_large_as_promised():
    assert len(MUTANTS) >= 25 and len(VARIANTS) >= 5
    assert len({mutant.name for mutant in MUTANTS}) == len(MUTANTS)
    assert {mutant.component for mutant in MUTANTS} == set(COMPONENT_POINTS)
    for mutant in MUTANTS:
        assert mutant.failing and all(number.startswith(mutant.component + ".") for number in mutant.failing)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: f"{mutant.component}-{mutant.name}")
def test_a_mutant_loses_points_in_its_component_only(synthetic, tmp_path, mutant: Mutant):
    notebook = build_notebook(mutant.replacements, tmp_path / "mutant.ipynb")
    document = graded(notebook, tmp_path / "results.json", suite="all", training=False)
    scores = scores_by_component(document)
    for component, (score, maximum) in scores.items():
        if component != mutant.component:
            assert score == maximum, f"{mutant.name} cost points in {component}:\n{explain(document)}"
    if mutant.breaks_learning:
        document = graded(notebook, tmp_path / "training.json", suite="all", only=mutant.component)
        scores = scores_by_component(document)
    score, maximum = scores[mutant.component]
    assert score < COMPONENT_POINTS[mutant.component] and score < maximum, f"{mutant.name} was not caught"
    missed = set(mutant.failing) - failed_numbers(document)
    assert not missed, f"{mutant.name}: expected {sorted(missed)} to fail:\n{explain(document)}"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.name)
def test_a_correct_solution_in_another_style_scores_full(synthetic, tmp_path, variant: Variant):
    notebook = build_notebook(variant.replacements, tmp_path / "variant.ipynb")
    document = graded(notebook, tmp_path / "results.json", suite="all", training=False)
    assert failed_numbers(document) == set(), explain(document)
    for component in variant.components if variant.trains else []:
        document = graded(notebook, tmp_path / f"{component}.json", suite="all", only=component)
        assert failed_numbers(document) == set(), explain(document)
