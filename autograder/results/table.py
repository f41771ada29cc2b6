"""What a local grade prints: a fixed-width table of results, the reason under each test that lost points, and a
summary line saying which points the public tests cover, for TAs and students running the grader locally."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

from autograder.results.gradescope import Results, clean_text

_GREEN, _YELLOW, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_MIN_NAME = 10
_DEFAULT_WIDTH = 100


def use_color() -> bool:
    """Colour only when stdout is a terminal and NO_COLOR is unset."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def terminal_width() -> int | None:
    """The terminal's width, or None (no limit) when stdout is a file or a pipe: a log keeps whole names."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((_DEFAULT_WIDTH, 24)).columns


def format_table(results: Results | Mapping[str, Any], *, color: bool | None = None, width: int | None = None) -> str:
    """One line per test (number, name, score / max, status) and a total line. `color` None means colour
    only when stdout is a terminal and NO_COLOR is unset; `width` None means the terminal's width, or no
    limit when stdout is not a terminal."""
    if not isinstance(results, Results):
        results = Results.from_dict(results)
    if color is None:
        color = use_color()
    if width is None:
        width = terminal_width() or sys.maxsize

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


def format_reasons(results: Results | Mapping[str, Any], *, color: bool | None = None, width: int | None = None) -> str:
    """Under the name of each test that lost points, its whole message, wrapped to `width` (None: the
    terminal's, else 100) and indented; empty when every test scored full marks."""
    if not isinstance(results, Results):
        results = Results.from_dict(results)
    if color is None:
        color = use_color()
    width = width or terminal_width() or _DEFAULT_WIDTH
    blocks = []
    for test in results.tests:
        entry = test.to_dict()
        if entry["score"] >= entry["max_score"]:
            continue
        partial = entry["score"] > 0
        title = f"{entry.get('number', '')} {' '.join(entry['name'].split())}".strip()
        title += f"  ({_points(entry['score'], entry['max_score'])})"
        if color:
            title = f"{_YELLOW if partial else _RED}{title}{_RESET}"
        message = clean_text(test.output, None).strip() or "(no message)"
        blocks.append(title + "\n" + _indent(message, width))
    return "\n\n".join(blocks)


PUBLIC_HEADLINE = "Public tests:"  # how the results' top-level output begins (results/plugin.py)


def without_headline(output: str) -> str:
    """The results' top-level output without its first line, the public score, which `format_summary` says
    again on a terminal with what the public tests cover (printed twice, a student read the score twice)."""
    first, _, rest = output.partition("\n")
    return rest.lstrip("\n") if first.startswith(PUBLIC_HEADLINE) else output


def format_summary(results: Results | Mapping[str, Any], total_points: float | None = None) -> str:
    """One line: the score, how many points the public (visible) tests cover, and that the rest are graded
    after the deadline. `total_points` is the problem set's total (10) when the run was not narrowed to a
    component, so that a run of the public tests alone can say how many points it did not cover."""
    if not isinstance(results, Results):
        results = Results.from_dict(results)
    entries = [test.to_dict() for test in results.tests]
    public = [entry for entry in entries if entry["visibility"] == "visible"]
    public_score = sum(entry["score"] for entry in public)
    public_max = sum(entry["max_score"] for entry in public)
    later = (total_points if total_points is not None else results.max_score) - public_max
    if len(public) == len(entries):
        line = f"{PUBLIC_HEADLINE} {public_score:g} / {public_max:g} points."
        if total_points is not None:
            line += f" They cover {public_max:g} of the problem set's {total_points:g} points"
            line += f"; the other {later:g} are graded after the deadline." if later > 0 else "."
        else:
            line += " Hidden tests are graded after the deadline."
        return line
    return (
        f"Score: {results.total_score:g} / {results.max_score:g} points. The public tests cover {public_max:g} of "
        f"them ({public_score:g} scored); the other {later:g} are hidden tests, which students see after the "
        "deadline."
    )


def _indent(message: str, width: int) -> str:
    """Each line of `message` wrapped to `width` behind four spaces; lines indented in the message (code,
    tracebacks) are kept as they are."""
    lines = []
    for line in message.splitlines():
        if not line.strip() or line[:1].isspace():
            lines.append(("    " + line).rstrip())
            continue
        lines.extend(
            textwrap.wrap(
                line,
                max(width, 40),
                initial_indent="    ",
                subsequent_indent="    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def _points(score: float, max_score: float) -> str:
    return f"{score:.2f} / {max_score:.2f}"
