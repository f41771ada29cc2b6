"""Gradescope results: the results.json model and writer, the pytest plugin that scores grading suites,
and a terminal table. Importing this package loads neither torch nor the worker."""

from autograder.results.gradescope import (
    Results,
    TestResult,
    TestSpec,
    clean_text,
    fallback_results,
    load_results,
    write_results,
)
from autograder.results.table import format_reasons, format_summary, format_table, without_headline

__all__ = [
    "Results",
    "TestResult",
    "TestSpec",
    "clean_text",
    "fallback_results",
    "format_reasons",
    "format_summary",
    "without_headline",
    "format_table",
    "load_results",
    "write_results",
]
