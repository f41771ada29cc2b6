"""Part 7.1's mutants: each loses points in its own component only, in the tests it names.

Every mutant is graded on every test that does not train (public and hidden), which shows that the other
components keep full marks; a mutant whose bug shows only in training also gets its component's training
tests (DESIGN.md section 2: training only where a test needs it). Mutants of different components are graded
together, one grade per bundle (`harness.bundles`): component isolation is what makes that the same test.
"""

from __future__ import annotations

import pytest

from tests.corpus.harness import Mutant, check_mutant
from tests.corpus.mutants_7_1 import MUTANTS

pytestmark = pytest.mark.timeout(1800)  # a grade, with training for some: minutes on a busy machine


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: f"{mutant.component}-{mutant.name}")
def test_a_mutant_loses_points_in_its_component_only(synthetic, tmp_path, mutant: Mutant):
    check_mutant(mutant, tmp_path, MUTANTS)
