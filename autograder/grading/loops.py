"""The verdict on "no Python loops": a loop over the data is work that grows with the data.

The worker runs the student's function at a small and a large size with everything else fixed (the same k,
the same tokenizer keys) and counts how often each line of the student's code ran
(`autograder.worker.probes.loops`). The rule, per line:

    a line loops over the data when  count(large) - count(small) >= GROWTH_PER_ITEM * (large - small)

that is, when it ran at least once more for every `1 / GROWTH_PER_ITEM` extra items. Why this rule:
- a loop or comprehension over a fixed number of things runs exactly as often at both sizes (growth 0), so
  the tokenizer-keys dict comprehension and a comprehension over the k results pass whatever their style;
- a loop over the items runs its line once per item (growth = large - small, four times the bar), so
  it fails however it is written: `for`, `while`, a comprehension, `map` over a student helper, recursion;
- the bar is far above noise: a line run once more or less at one size (a branch on the size, a cache filled
  on the first call) grows by a few counts, not by the hundreds that separate the sizes; a loop over chunks of
  at least four items (the way `embed_images` batches) stays under it, and such a loop is not the per-item
  work the rule is about.
The static scan (`autograder.ingest.static`) only names the lines that grew.

A trace that cannot be trusted fails: a tracer removed while the function ran, no line of the function
itself seen although it returned, or code that names the tracing hooks (`sys.settrace`, `frame.f_trace`, ...:
switching tracing off and back on around a loop would hide it). What remains forgeable: reaching those hooks
without naming them (`getattr` with a computed string), or running the loop where no line is counted (in a
thread, in code compiled under a file name other than "<cell N>", or as `map` of a C function over the
items); the counts are taken in the student's interpreter, like every observation that is not recomputed on
the trusted side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from autograder.ingest.extract import Submission
from autograder.ingest.static import LoopFinding, find_python_loops, find_tracing_names

GROWTH_PER_ITEM = 0.25
_CELL_FILE = re.compile(r"<cell (\d+)(?: \(In \[\d+\]\))?>")  # CellRef.filename
_SHOWN_LINES = 4
_LINE_CHARS = 80


@dataclass(frozen=True)
class GrownLine:
    """A line of student code whose count grew with the size."""

    filename: str
    line: int
    small: int
    large: int

    @property
    def cell(self) -> int | None:
        """The position of the line's cell in the notebook, None for code not compiled from a cell."""
        match = _CELL_FILE.fullmatch(self.filename)
        return int(match.group(1)) if match else None


def _counts(observation: dict[str, Any]) -> dict[tuple[str, int], int]:
    return {(str(filename), int(line)): int(count) for filename, line, count in observation["lines"]}


def grown_lines(small: dict[str, Any], large: dict[str, Any]) -> list[GrownLine]:
    """The lines whose counts grew by at least `GROWTH_PER_ITEM` per extra item from the `small` to the `large`
    observation (each: {"size", "lines": [[filename, line, count], ...], ...}), in file and line order."""
    bar = GROWTH_PER_ITEM * (int(large["size"]) - int(small["size"]))
    before, after = _counts(small), _counts(large)
    return [
        GrownLine(filename, line, before.get((filename, line), 0), count)
        for (filename, line), count in sorted(after.items())
        if count - before.get((filename, line), 0) >= bar
    ]


def untrusted_trace(
    observations: list[dict[str, Any]], function: str, submission: Submission, qualname: str
) -> str | None:
    """Why the counts cannot decide (the failure message), or None when every call was traced throughout and
    the code (`qualname` and the helpers it reaches) does not name the tracing hooks that could hide a loop."""
    try:
        tracing = find_tracing_names(submission, qualname)
    except KeyError:
        tracing = []
    if tracing:
        return (
            f"expected {function} to leave the interpreter's tracing alone (the grader counts the lines your code "
            "runs to see whether it loops over the data); observed that it uses "
            + "; ".join(tracing[:_SHOWN_LINES])
            + ". Remove that code"
        )
    if not all(observation["intact"] for observation in observations):
        return (
            f"expected {function} to run with the grader's line counter in place; observed that tracing was "
            "switched off or replaced while it ran (sys.settrace / sys.setprofile), so the check cannot see "
            "whether it loops over the data. Leave tracing alone"
        )
    if not all(observation["entry_lines"] > 0 for observation in observations):
        return (
            f"expected to see the lines of {function} run when it was called; observed none of them, although "
            "it returned (is it a function defined in your notebook, and does it leave tracing alone?)"
        )
    return None


def _named(grown: GrownLine, findings: list[LoopFinding], submission: Submission) -> str:
    """ "cell C, line L: <what the static scan calls it, or the line itself> (ran a times, then b times)"."""
    finding = next((f for f in findings if (f.cell.position, f.line) == (grown.cell, grown.line)), None)
    if finding is not None:
        text = finding.describe()
    else:
        cell = next((cell for cell in submission.cells if cell.position == grown.cell), None)
        text = f"{cell or grown.filename}, line {grown.line}"
        source = submission.source_of(cell.position) if cell is not None else None
        if source is not None:
            lines = source.split("\n")
            if 0 < grown.line <= len(lines):
                code = " ".join(lines[grown.line - 1].split())
                text += f": `{code[: _LINE_CHARS - 1] + '…' if len(code) > _LINE_CHARS else code}`"
    return text


def describe_grown_lines(
    grown: list[GrownLine], findings: list[LoopFinding], submission: Submission, sizes: tuple[int, int], items: str
) -> str:
    """The grown lines, named as the static scan names them, with their counts at both sizes."""
    small, large = sizes
    shown = [
        f"{_named(line, findings, submission)} (ran {line.small} times for {small} {items}, {line.large} times "
        f"for {large})"
        for line in grown[:_SHOWN_LINES]
    ]
    more = len(grown) - _SHOWN_LINES
    return "; ".join(shown) + (f"; and {more} more line{'s' if more != 1 else ''}" if more > 0 else "")


def loop_verdict(
    observations: list[dict[str, Any]],
    qualname: str,
    submission: Submission,
    *,
    sizes: tuple[int, int],
    items: str,
    expected: str,
    larger: str,
    advice: str,
) -> str | None:
    """The failure message of a "no Python loops" test, or None when it passes: the trace must be one to trust
    (`untrusted_trace`), and no line of the student's code may run more often at the larger size (`grown_lines`),
    each grown line named as the static scan names it."""
    untrusted = untrusted_trace(observations, qualname, submission, qualname)
    if untrusted:
        return untrusted
    grown = grown_lines(*observations)
    if not grown:
        return None
    try:
        findings = find_python_loops(submission, qualname)
    except KeyError:
        findings = []
    described = describe_grown_lines(grown, findings, submission, sizes, items)
    return f"expected {expected}; observed lines that ran more often {larger}: {described}. {advice}"
