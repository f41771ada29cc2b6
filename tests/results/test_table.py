"""The terminal output: the table (aligned columns, a computed total, truncation to the width, colour only on
request), the reasons under each test that lost points, and the summary line."""

from __future__ import annotations

import re

from autograder.results import Results, TestResult, format_reasons, format_summary, format_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sample() -> Results:
    return Results(
        [
            TestResult("7.1.1 Encoder: output shape", "7.1.1", 1.0, 1.0, "passed"),
            TestResult("7.1.2 Decoder: parameter count matches 42,135", "7.1.2", 0.0, 1.0, "failed"),
            TestResult("7.2.2 CLIPModel: loss\nmatches the symmetric InfoNCE", "7.2.2.1", 0.5, 2.0, "failed"),
            TestResult("7.2.4 retrieve_images", None, 0.25, 0.25, "passed"),
        ]
    )


def test_rows_columns_and_total() -> None:
    results = sample()
    lines = format_table(results, color=False, width=120).splitlines()
    header, rule, *rows, rule2, total = lines
    assert header.split() == ["No.", "Test", "Score", "Status"]
    assert set(rule) == {"-"} and rule == rule2
    assert len(rows) == len(results.tests)
    for line, test in zip(rows, results.tests, strict=True):
        assert line.startswith(test.number or " ")
        assert " ".join(test.name.split()) in line  # newlines in names do not break the table
        assert f"{test.score:.2f} / {test.max_score:.2f}" in line
    assert [line.split()[-1] for line in rows] == ["passed", "failed", "partial", "passed"]
    assert f"{results.total_score:.2f} / {results.max_score:.2f}" in total
    assert total.rstrip().endswith("2/4 passed") and "Total" in total
    slash = {line.index(" / ") for line in rows + [total]}
    assert len(slash) == 1  # the score column is right-aligned


def test_long_names_are_cut_to_the_width() -> None:
    results = Results([TestResult("x" * 300, "1", 1.0, 1.0, "passed"), TestResult("short", "2", 0, 1, "failed")])
    lines = format_table(results, color=False, width=70).splitlines()
    assert all(len(line) <= 70 for line in lines)
    assert "\u2026" in lines[2] and "short" in lines[3]


def test_colour_only_when_asked_and_otherwise_identical() -> None:
    plain = format_table(sample(), color=False, width=100)
    coloured = format_table(sample(), color=True, width=100)
    assert "\x1b" not in plain and "\x1b[32m" in coloured and "\x1b[31m" in coloured
    assert ANSI.sub("", coloured) == plain
    assert "\x1b" not in format_table(sample(), width=100)  # stdout is captured here, not a terminal


def test_a_loaded_json_document_gives_the_same_table() -> None:
    results = sample()
    assert format_table(results.to_dict(), color=False, width=100) == format_table(results, color=False, width=100)


def test_reasons_list_only_the_tests_that_lost_points_wrapped_and_indented() -> None:
    long = "expected 4 convolutions; observed 2. " * 6
    results = Results(
        [
            TestResult("7.1.1 Encoder: layers", "7.1.1.1", 0.0, 0.25, "failed", long.strip()),
            TestResult("7.1.1 Encoder: shape", "7.1.1.2", 0.2, 0.2, "passed", "a note"),
            TestResult("7.1.5 report", "7.1.5.1", 0.25, 0.5, "failed", "line one\n  indented code line"),
        ]
    )
    text = format_reasons(results, color=False, width=60)
    lines = text.splitlines()
    assert lines[0] == "7.1.1.1 7.1.1 Encoder: layers  (0.00 / 0.25)"
    assert "7.1.1.2" not in text and "a note" not in text
    body = lines[1 : lines.index("")]
    assert len(body) > 1 and all(line.startswith("    ") and len(line) <= 60 for line in body)
    assert " ".join(" ".join(body).split()) == " ".join(long.split())
    assert text.endswith("7.1.5.1 7.1.5 report  (0.25 / 0.50)\n    line one\n      indented code line")
    coloured = format_reasons(results, color=True, width=60)
    assert "\x1b[31m7.1.1.1" in coloured and "\x1b[33m7.1.5.1" in coloured and ANSI.sub("", coloured) == text


def test_summary_says_which_points_the_public_tests_cover() -> None:
    public = Results([TestResult("a", "7.1.1.1", 1.0, 2.0, "failed"), TestResult("b", "7.1.1.2", 1.5, 1.5, "passed")])
    assert format_summary(public, 10) == (
        "Public tests: 2.5 / 3.5 points. They cover 3.5 of the problem set's 10 points; the other 6.5 are graded "
        "after the deadline."
    )
    assert format_summary(public) == "Public tests: 2.5 / 3.5 points. Hidden tests are graded after the deadline."
    everything = Results(public.tests + [TestResult("c", "7.1.1.3", 0.5, 6.5, "failed", visibility="after_due_date")])
    assert format_summary(everything, 10) == (
        "Score: 3 / 10 points. The public tests cover 3.5 of them (2.5 scored); the other 6.5 are hidden tests, "
        "which students see after the deadline."
    )
