"""7.2.3 Report (1 point): the CLIP linear-probe accuracy written in a markdown cell, plausible."""

import pytest

from autograder.suites.reports import reported

PHRASE = "CLIP accuracy:"
METHOD_1_PHRASE = "method 1 accuracy:"

pytestmark = pytest.mark.tags("7.2", "clip", "report")


def _clip_answer(submission):
    answer = reported(submission.text_cells, PHRASE)
    assert answer is not None, (
        f"expected a line starting with `{PHRASE}` in a markdown cell, e.g. `{PHRASE} 0.80`; found none"
    )
    assert answer.value is not None, (
        f"expected a number after `{PHRASE}` (e.g. `{PHRASE} 0.80` or `{PHRASE} 80%`); observed the line "
        f"`{answer.line}`"
    )
    return answer


@pytest.mark.points(0.5)
@pytest.mark.number("7.2.3.1")
def test_clip_accuracy_is_reported(submission):
    """7.2.3 Report: a line `CLIP accuracy: <number>` in a markdown cell"""
    _clip_answer(submission)


@pytest.mark.points(0.5)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.2.3.2")
def test_clip_accuracy_is_plausible(submission):
    """7.2.3 Report: the CLIP accuracy is between 0 and 1 and above Method I's"""
    answer = _clip_answer(submission)
    assert 0 < answer.value <= 1, (
        f"expected an accuracy between 0 and 1 (a fraction such as 0.80, or a percentage such as 80%); observed "
        f"{answer.written} in `{answer.line}`"
    )
    method_1 = reported(submission.text_cells, METHOD_1_PHRASE)
    if method_1 is None or method_1.value is None or not 0 < method_1.value <= 1:
        return
    assert answer.value > method_1.value, (
        f"expected the CLIP image encoder's accuracy to be above the autoencoder's (Method I, which you reported "
        f"as {method_1.written}); observed {answer.written}. Did you copy the right number?"
    )
