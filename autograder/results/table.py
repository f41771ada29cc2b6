"""A fixed-width terminal table of results, for TAs and students running the grader locally."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from autograder.results.gradescope import Results

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_MIN_NAME = 10
_DEFAULT_WIDTH = 100


def format_table(
    results: Results | Mapping[str, Any], *, color: bool | None = None, width: int | None = None
) -> str:
    """One line per test (number, name, score / max, status) and a total line. `color` None means colour
    only when stdout is a terminal and NO_COLOR is unset; `width` None means the terminal's width."""
    if not isinstance(results, Results):
        results = Results.from_dict(results)
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if width is None:
        width = shutil.get_terminal_size((_DEFAULT_WIDTH, 24)).columns

    rows: list[tuple[str, str, str, str]] = []
    passed = 0
    for test in results.tests:
        entry = test.to_dict()
        status = entry["status"]
        if status == "failed" and 0 < entry["score"] < entry["max_score"]:
            status = "partial"
        passed += status == "passed"
        name = " ".join(entry["name"].split())
        rows.append((entry.get("number", ""), name, _points(entry["score"], entry["max_score"]), status))
    total = ("", "Total", _points(results.total_score, results.max_score), f"{passed}/{len(rows)} passed")

    number_width = max([len("No.")] + [len(row[0]) for row in rows])
    score_width = max(len("Score"), len(total[2]), *(len(row[2]) for row in rows))
    status_width = max(len("Status"), len(total[3]), *(len(row[3]) for row in rows))
    fixed = number_width + score_width + status_width + 6  # three two-space gaps
    longest_name = max([len("Test"), len(total[1])] + [len(row[1]) for row in rows])
    name_width = min(longest_name, max(_MIN_NAME, width - fixed))

    def line(number: str, name: str, score: str, status: str, paint: str = "") -> str:
        if len(name) > name_width:
            name = name[: name_width - 1] + "\u2026"
        status_cell = f"{paint}{status}{_RESET}" if paint else status
        return f"{number:<{number_width}}  {name:<{name_width}}  {score:>{score_width}}  {status_cell}".rstrip()

    colours = {"passed": _GREEN, "partial": _YELLOW, "failed": _RED}
    lines = [line("No.", "Test", "Score", "Status"), "-" * (fixed + name_width)]
    lines += [line(*row, paint=colours[row[3]] if color else "") for row in rows]
    lines.append("-" * (fixed + name_width))
    lines.append(line(*total, paint=_BOLD if color else ""))
    return "\n".join(lines)


def _points(score: float, max_score: float) -> str:
    return f"{score:.2f} / {max_score:.2f}"
