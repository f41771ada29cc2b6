"""7.1.5 report (1 point): the report lines `method 1 accuracy: 0.32` (a fraction or a percentage) in the
notebook's markdown, read as 7.2.3 reads its line (`autograder.suites.reports`: only lines that start with
the phrase count, since the problem statement shows the form mid-line). Public: a plausible number for each
method. Hidden: the order II > I > III."""

import pytest

from autograder.suites.reports import reported

NAMES = {1: "method 1", 2: "method 2", 3: "method 3"}
PLAUSIBLE = (0.05, 1.0)  # ten classes: chance is 0.10

pytestmark = pytest.mark.tags("7.1", "autoencoder", "report")


def _reported(submission) -> dict[int, float]:
    """Each method's reported accuracy as a fraction, for the methods whose line holds a number."""
    lines = {method: reported(submission.text_cells, f"{name} accuracy:") for method, name in NAMES.items()}
    return {method: line.value for method, line in lines.items() if line is not None and line.value is not None}


@pytest.mark.points(0.5)
@pytest.mark.number("7.1.5.1")
def test_report_gives_each_methods_accuracy(submission, credit):
    """7.1.5 report: a plausible test accuracy for each of Methods I, II and III"""
    accuracies = _reported(submission)
    problems = []
    for method, name in NAMES.items():
        if method not in accuracies:
            problems.append(f"no line starting with `{name} accuracy:` and a number (e.g. `{name} accuracy: 0.32`)")
        elif not PLAUSIBLE[0] <= accuracies[method] <= PLAUSIBLE[1]:
            problems.append(
                f"`{name} accuracy` is {accuracies[method]:g}, not a plausible test accuracy of a ten-class classifier "
                f"(expected between {PLAUSIBLE[0]} and {PLAUSIBLE[1]}: write a fraction such as 0.32 or a percentage "
                "such as 32%)"
            )
    credit.award((len(NAMES) - len(problems)) / len(NAMES))
    assert not problems, "expected in a markdown cell one line per method; " + "; ".join(problems)


@pytest.mark.points(0.5)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.5.2")
def test_report_orders_the_methods(submission, credit):
    """7.1.5 report: the reported accuracies are in the expected order, Method II > Method I > Method III"""
    accuracies = _reported(submission)
    missing = [NAMES[method] for method in NAMES if method not in accuracies]
    assert not missing, f"cannot check the order of the accuracies: no number reported for {', '.join(missing)}"
    first, second, third = accuracies[1], accuracies[2], accuracies[3]
    problems = []
    if not second > first:
        problems.append(f"Method II (trained with the labels) should beat Method I: {second:g} <= {first:g}")
    if not first > third:
        problems.append(f"Method I (autoencoder features) should beat Method III (random): {first:g} <= {third:g}")
    credit.award((2 - len(problems)) / 2)
    assert not problems, "expected Method II > Method I > Method III; " + "; ".join(problems)
