"""7.1.5 report (1 point): each method's test accuracy (a fraction or a percentage) in the notebook's markdown,
read by `autograder.suites.reports` as 7.2.3 reads its answer (`Method I accuracy: 0.32`, `method 1: 32%`, a
table row per method, ...; only answers at the start of a line count, since the problem statement shows the
form mid-line). Public: a plausible number for each method. Hidden: the order II > I > III."""

import pytest

from autograder.suites.reports import ACCEPTED_FORMS, AmbiguousReport, display_name, reported

SUBJECTS = {1: "method 1", 2: "method 2", 3: "method 3"}
PLAUSIBLE = (0.05, 1.0)  # ten classes: chance is 0.10

pytestmark = pytest.mark.tags("7.1", "autoencoder", "report")


def _reported(submission) -> tuple[dict[int, float], dict[int, str]]:
    """Each method's reported accuracy as a fraction, and what is wrong for the methods without one."""
    accuracies: dict[int, float] = {}
    problems: dict[int, str] = {}
    for method, subject in SUBJECTS.items():
        name = display_name(subject)
        try:
            answer = reported(submission.text_cells, subject)
        except AmbiguousReport as error:
            problems[method] = str(error)
            continue
        if answer is None:
            problems[method] = f"no answer for {name} found"
        elif answer.value is None:
            problems[method] = f"no number in `{answer.line}`"
        else:
            accuracies[method] = answer.value
    return accuracies, problems


@pytest.mark.points(0.5)
@pytest.mark.number("7.1.5.1")
def test_report_gives_each_methods_accuracy(submission, credit):
    """7.1.5 report: a plausible test accuracy for each of Methods I, II and III"""
    accuracies, problems = _reported(submission)
    for method, accuracy in accuracies.items():
        if not PLAUSIBLE[0] <= accuracy <= PLAUSIBLE[1]:
            problems[method] = (
                f"{display_name(SUBJECTS[method])}'s accuracy is {accuracy:g}, not a plausible test accuracy of a "
                f"ten-class classifier (expected between {PLAUSIBLE[0]} and {PLAUSIBLE[1]}: write a fraction such "
                "as 0.32 or a percentage such as 32%)"
            )
    credit.award((len(SUBJECTS) - len(problems)) / len(SUBJECTS))
    assert not problems, (
        "expected in a markdown cell the test accuracy of each method; "
        + "; ".join(problems[method] for method in sorted(problems))
        + f". Accepted forms: {ACCEPTED_FORMS}"
    )


@pytest.mark.points(0.5)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.5.2")
def test_report_orders_the_methods(submission, credit):
    """7.1.5 report: the reported accuracies are in the expected order, Method II > Method I > Method III"""
    accuracies, problems = _reported(submission)
    assert not problems, "cannot check the order of the accuracies: " + "; ".join(
        problems[method] for method in sorted(problems)
    )
    first, second, third = accuracies[1], accuracies[2], accuracies[3]
    order = []
    if not second > first:
        order.append(f"Method II (trained with the labels) should beat Method I: {second:g} <= {first:g}")
    if not first > third:
        order.append(f"Method I (autoencoder features) should beat Method III (random): {first:g} <= {third:g}")
    credit.award((2 - len(order)) / 2)
    assert not order, "expected Method II > Method I > Method III; " + "; ".join(order)
