"""7.2.3 Report (1 point): the CLIP linear-probe accuracy written in a markdown cell, plausible (read by
`autograder.suites.reports`: `CLIP accuracy: 0.80`, `CLIP linear probe accuracy = 80%`, a `### CLIP` heading
followed by `accuracy: 0.80`, a table row; only answers at the start of a line count)."""

import pytest

from autograder.suites.reports import ACCEPTED_CLIP_FORMS, AmbiguousReport, reported

SUBJECT = "CLIP"
METHOD_1 = "method 1"

pytestmark = pytest.mark.tags("7.2", "clip", "report")


def _clip_answer(submission):
    try:
        answer = reported(submission.text_cells, SUBJECT)
    except AmbiguousReport as error:
        pytest.fail(f"expected one CLIP accuracy; {error}", pytrace=False)
    assert answer is not None, (
        f"expected the CLIP accuracy in a markdown cell, e.g. `CLIP accuracy: 0.80`; found none. Accepted forms: "
        f"{ACCEPTED_CLIP_FORMS}"
    )
    assert answer.value is not None, (
        f"expected a number in the CLIP answer (e.g. `CLIP accuracy: 0.80` or `CLIP accuracy: 80%`); observed "
        f"`{answer.line}`"
    )
    return answer


def _method_1(submission):
    try:
        return reported(submission.text_cells, METHOD_1)
    except AmbiguousReport:
        return None  # 7.1.5 says so; here the comparison is simply left out


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
    method_1 = _method_1(submission)
    if method_1 is None or method_1.value is None or not 0 < method_1.value <= 1:
        return
    assert answer.value > method_1.value, (
        f"expected the CLIP image encoder's accuracy to be above the autoencoder's (Method I, which you reported "
        f"as {method_1.written}); observed {answer.written}. Did you copy the right number?"
    )
