"""The terminal table: aligned columns, a computed total, truncation to the width, colour only on request."""

from __future__ import annotations

import re

from autograder.results import Results, TestResult, format_table

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
