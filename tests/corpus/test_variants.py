"""Correct solutions in other styles score full marks: every test that does not train, and the training
tests of the component whose training code differs from the reference's (the reference's complete grade is
tests/grading/test_full_grade.py's)."""

from __future__ import annotations

import pytest

from tests.corpus.harness import Variant, check_variant
from tests.corpus.mutants_7_1 import VARIANTS as VARIANTS_7_1
from tests.corpus.mutants_7_2 import VARIANTS as VARIANTS_7_2

pytestmark = pytest.mark.timeout(1800)  # a grade, with training for some: minutes on a busy machine


@pytest.mark.parametrize("variant", [*VARIANTS_7_1, *VARIANTS_7_2], ids=lambda variant: variant.name)
def test_a_correct_solution_in_another_style_scores_full(synthetic, tmp_path, variant: Variant):
    check_variant(variant, tmp_path)
