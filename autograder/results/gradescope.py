"""Gradescope's results.json: the data model, its cleaning, its Markdown, and an atomic writer.

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ ("Output format"). Gradescope
rejects or mangles a malformed file and then shows the student nothing, so everything here aims at one
property: whatever a submission makes the grader say (huge messages, binary junk, NaN scores), the file
written is valid JSON in Gradescope's schema, and it is replaced atomically so a reader never sees half
of it.

Over 400 lines on purpose: the file's whole contract (model, cleaning, Markdown, atomic write) stays in one place,
since every part serves the one property above.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.truncation import keep_ends

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
STATUSES = ("passed", "failed")
OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")

TEST_OUTPUT_LIMIT = 8192
TOP_OUTPUT_LIMIT = 65536
NAME_LIMIT = 500
SCORE_DIGITS = 6
_EXTRA_DEPTH = 20

# Outputs are Markdown ("md" renders "some basic markdown", the specification says) built by `to_markdown`:
# the grader's lines with every character that could start markup escaped, indented blocks (tracebacks,
# printed output) in fenced code blocks, so nothing a student wrote is ever rendered as markup. Names stay text.
_OUTPUT_FORMAT = "md"
_TEXT_FORMAT = "text"
_MD_ESCAPED = re.compile(r"([\\`*_\[\]<>&~|$@])|(://)|(?<=www)(\.)", re.IGNORECASE)
_MD_LINE_START = re.compile(r"^([#>+=-]|\d+(?=[.)]))")
_MD_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MD_FENCE = re.compile(r"^(`{3,})$")
_HARD_BREAK = "  "

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")

FALLBACK_TEST_OUTPUT = (
    "Not graded: the autograder failed before it could grade this test. This is not your fault; "
    "please contact the course staff."
)


@dataclass(frozen=True)
class TestSpec:
    """What is known about a test before it runs: enough to list it, with 0 points, when grading fails."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    max_score: float
    number: str | None = None
    visibility: str = "visible"
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("visibility", self.visibility, VISIBILITIES)


@dataclass
class TestResult:
    """One Gradescope test case. Text fields may hold anything; they are cleaned when serialised."""

    __test__ = False

    name: str
    number: str | None
    score: float
    max_score: float
    status: str
    output: str = ""
    visibility: str = "visible"
    tags: Sequence[str] = ()
    extra_data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_choice("status", self.status, STATUSES)
        _check_choice("visibility", self.visibility, VISIBILITIES)

    @property
    def spec(self) -> TestSpec:
        """The test's identity without its outcome (for `fallback_results`)."""
        return TestSpec(self.name, _clean_score(self.max_score), self.number, self.visibility, tuple(self.tags))

    def to_dict(self) -> dict[str, Any]:
        """The test as Gradescope expects it, cleaned: finite scores within [0, max_score], bounded text."""
        max_score = _clean_score(self.max_score)
        entry: dict[str, Any] = {
            "name": clean_text(self.name, NAME_LIMIT) or "(unnamed test)",
            "score": _clean_score(self.score, max_score),
            "max_score": max_score,
            "status": self.status,
            "output": markdown_within(self.output, TEST_OUTPUT_LIMIT),
            "visibility": self.visibility,
        }
        if self.number is not None:
            entry["number"] = clean_text(self.number, NAME_LIMIT)
        if self.tags:
            entry["tags"] = [clean_text(tag, NAME_LIMIT) for tag in self.tags]
        if self.extra_data:
            entry["extra_data"] = _jsonable(self.extra_data, 0)
        return entry


@dataclass
class Results:
    """A whole results.json. `score` None means "the sum of the tests' scores", which we always write out
    explicitly so that Gradescope never has to guess. `grader_error` (not written to the file) says why
    the grader itself failed, for fallback results."""

    tests: list[TestResult] = field(default_factory=list)
    score: float | None = None
    execution_time: float | None = None
    output: str = ""
    stdout_visibility: str = "hidden"
    visibility: str | None = None
    extra_data: Mapping[str, Any] | None = None
    grader_error: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_choice("stdout_visibility", self.stdout_visibility, VISIBILITIES)
        if self.visibility is not None:
            _check_choice("visibility", self.visibility, VISIBILITIES)

    @property
    def total_score(self) -> float:
        """The score Gradescope will record: explicit, else the sum of the (cleaned) test scores."""
        if self.score is not None:
            return _clean_score(self.score)
        return round(sum(test.to_dict()["score"] for test in self.tests), SCORE_DIGITS)

    @property
    def max_score(self) -> float:
        """The sum of the tests' max scores (not part of Gradescope's format; for reports)."""
        return round(sum(_clean_score(test.max_score) for test in self.tests), SCORE_DIGITS)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object to write: always valid in Gradescope's schema, whatever the text fields hold."""
        tests = [test.to_dict() for test in self.tests]
        score = (
            _clean_score(self.score)
            if self.score is not None
            else round(sum(test["score"] for test in tests), SCORE_DIGITS)
        )
        document: dict[str, Any] = {
            "score": score,
            "output": markdown_within(self.output, TOP_OUTPUT_LIMIT),
            "output_format": _OUTPUT_FORMAT,
            "test_output_format": _OUTPUT_FORMAT,
            "test_name_format": _TEXT_FORMAT,
            "stdout_visibility": self.stdout_visibility,
            "tests": tests,
        }
        if self.execution_time is not None:
            seconds = float(self.execution_time)
            document["execution_time"] = round(seconds) if math.isfinite(seconds) and seconds > 0 else 0
        if self.visibility is not None:
            document["visibility"] = self.visibility
        if self.extra_data:
            document["extra_data"] = _jsonable(self.extra_data, 0)
        return document

    @classmethod
    def from_dict(cls, document: Any, source: str = "results") -> Results:
        """Read back a results object (ours or hand-written); `source` names the file in error messages."""
        if not isinstance(document, Mapping):
            raise ValueError(f"{source}: expected a JSON object at the top level, got {type(document).__name__}")
        raw_tests = document.get("tests", [])
        if not isinstance(raw_tests, list):
            raise ValueError(f"{source}: 'tests' must be a list, got {type(raw_tests).__name__}")
        test_format = document.get("test_output_format", _TEXT_FORMAT)
        tests = [
            _test_from_dict(entry, f"{source}: tests[{index}]", test_format) for index, entry in enumerate(raw_tests)
        ]
        output = _string(document.get("output", ""), f"{source}: output")
        try:
            return cls(
                tests=tests,
                score=_checked_score(document["score"], f"{source}: score") if "score" in document else None,
                execution_time=(
                    _checked_number(document["execution_time"], f"{source}: execution_time")
                    if "execution_time" in document
                    else None
                ),
                output=from_markdown(output) if document.get("output_format") == _OUTPUT_FORMAT else output,
                stdout_visibility=document.get("stdout_visibility", "hidden"),
                visibility=document.get("visibility"),
                extra_data=document.get("extra_data"),
            )
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None


def to_markdown(text: str) -> str:
    """Plain text as Markdown that renders as the same text: lines that start with a space or a tab (tracebacks,
    code, printed output) go into fenced code blocks, verbatim; every other line has the characters that could
    start markup backslash-escaped (and a line break kept with two trailing spaces). `from_markdown` inverts it."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line[:1] in (" ", "\t"):
            end = index
            while end < len(lines) and lines[end][:1] in (" ", "\t"):
                end += 1
            block = lines[index:end]
            longest = max((len(run) for run in re.findall(r"`+", "\n".join(block))), default=0)
            fence = "`" * max(3, longest + 1)
            out += [fence, *block, fence]
            index = end
            continue
        escaped = _MD_ESCAPED.sub(lambda match: "\\" + match.group(0), line)
        escaped = _MD_LINE_START.sub(_escape_line_start, escaped)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line and following and following[:1] not in (" ", "\t"):
            escaped += _HARD_BREAK
        out.append(escaped)
        index += 1
    return "\n".join(out)


def _escape_line_start(match: re.Match[str]) -> str:
    """`# `, `> `, `+ `, `- `, `===` start blocks; `1.` and `1)` start ordered lists (escaped after the digits)."""
    start = match.group(0)
    return start + "\\" if start[0].isdigit() else "\\" + start


def markdown_within(value: object, limit: int) -> str:
    """`value` cleaned (see `clean_text`) and as Markdown in at most `limit` characters: the plain text is cut
    (in the middle, saying so) until its Markdown fits; a last resort cut can only leave a fence open, which
    shows the rest as code, never as markup."""
    budget = limit
    for _ in range(8):
        rendered = to_markdown(clean_text(value, budget))
        if len(rendered) <= limit:
            return rendered
        budget = max(1, budget - (len(rendered) - limit) - 16)
    return rendered[:limit]


def from_markdown(text: str) -> str:
    """The plain text `to_markdown` was given (for reading results files back)."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        fence = _MD_FENCE.match(lines[index])
        if fence:
            end = lines.index(fence.group(1), index + 1) if fence.group(1) in lines[index + 1 :] else len(lines)
            out += lines[index + 1 : end]
            index = end + 1
            continue
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line and following and not _MD_FENCE.match(following) and line.endswith(_HARD_BREAK):
            line = line[: -len(_HARD_BREAK)]
        out.append(_MD_UNESCAPE.sub(r"\1", line))
        index += 1
    return "\n".join(out)


def clean_text(value: object, limit: int | None) -> str:
    """Text that is safe to show and to serialise: str (bytes decoded leniently), no terminal escapes, no
    control characters but tab and newline, no lone surrogates, and at most `limit` characters, cut in
    the middle with a marker saying how much was left out (the end of a message often matters most)."""
    text = _to_str(value)
    dropped = 0
    if limit is not None and len(text) > 4 * limit:
        keep = 2 * limit  # cut before the regular expressions so a 1 GB message costs nothing
        dropped = len(text) - 2 * keep
        text = text[:keep] + text[-keep:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI.sub("", text)
    text = _CONTROL.sub("\ufffd", text)
    text = _SURROGATE.sub("\ufffd", text)
    if limit is not None and (dropped or len(text) > limit):
        text = _cut_middle(text, limit, dropped)
    return text


def fallback_results(message: str, tests: Iterable[TestSpec] | None = None) -> Results:
    """Results for when the grader itself broke: every known test is listed with 0 points (so the test
    list looks like every other submission's) and the student is told it is not their fault."""
    output = (
        "The autograder failed while grading this submission. This is not your fault and says nothing "
        "about your work: please contact the course staff and mention this message.\n\n"
        f"Details: {_to_str(message)}"
    )
    listed = [
        TestResult(
            name=spec.name,
            number=spec.number,
            score=0.0,
            max_score=spec.max_score,
            status="failed",
            output=FALLBACK_TEST_OUTPUT,
            visibility=spec.visibility,
            tags=spec.tags,
        )
        for spec in tests or ()
    ]
    return Results(tests=listed, score=0.0, output=output, grader_error=_to_str(message))


def write_results(results: Results, path: str | os.PathLike[str]) -> Path:
    """Replace `path` atomically (temporary file in the same folder, fsync, rename) with mode 0644, so a
    crash or a concurrent reader only ever sees the old file or the new one. Raises only for
    operating-system failures (unwritable folder, full disk), never because of what the text contains."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = (json.dumps(results.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read a results.json back; a missing, non-JSON or malformed file is a ValueError naming it."""
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{source}: no such results file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: not a JSON results file ({error})") from None
    return Results.from_dict(document, str(source))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a folder, which is harmless."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _cut_middle(text: str, limit: int, already_dropped: int) -> str:
    def marker(omitted: int) -> str:
        return f"\n\n[... {omitted} characters left out: output is limited to {limit} characters ...]\n\n"

    longest_marker = len(marker(len(text) + already_dropped))
    if limit <= longest_marker:
        return text[:limit]
    kept = limit - longest_marker
    head = (kept * 3) // 4
    tail = kept - head
    return keep_ends(text, head, tail, marker(len(text) - kept + already_dropped))


def _to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails must not take the results file down with it
        return f"<unprintable {type(value).__name__}>"


def _clean_score(value: object, max_score: float | None = None) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if not math.isfinite(number) or number < 0:
        return 0.0
    if max_score is not None:
        number = min(number, max_score)
    return round(number, SCORE_DIGITS)


def _jsonable(value: Any, depth: int) -> Any:
    """Plain JSON data: NaN/infinity become null, keys become strings, unknown objects their text."""
    if depth > _EXTRA_DEPTH:
        return clean_text(value, TEST_OUTPUT_LIMIT)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value, TOP_OUTPUT_LIMIT)
    if isinstance(value, Mapping):
        return {clean_text(key, NAME_LIMIT): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value]
    return clean_text(value, TEST_OUTPUT_LIMIT)


def _check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _checked_number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits, which JSON allows
        raise ValueError(f"{where} is too large a number") from None


def _checked_score(value: object, where: str) -> float:
    """A score read back must be finite: NaN or infinity (which Python's JSON reader accepts) has no total."""
    number = _checked_number(value, where)
    if not math.isfinite(number):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return number


def _plain(text: str, output_format: object) -> str:
    return from_markdown(text) if output_format == _OUTPUT_FORMAT else text


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {value!r}")
    return value


def _test_from_dict(entry: object, where: str, output_format: str = _TEXT_FORMAT) -> TestResult:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be an object, got {type(entry).__name__}")
    score = _checked_score(entry.get("score", 0.0), f"{where}.score")
    max_score = _checked_score(entry.get("max_score", score), f"{where}.max_score")
    status = entry.get("status", "passed" if score >= max_score else "failed")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError(f"{where}.tags must be a list of strings, got {tags!r}")
    number = entry.get("number")
    try:
        return TestResult(
            name=_string(entry.get("name", ""), f"{where}.name"),
            number=None if number is None else str(number),
            score=score,
            max_score=max_score,
            status=status,
            output=_plain(
                _string(entry.get("output", ""), f"{where}.output"), entry.get("output_format", output_format)
            ),
            visibility=entry.get("visibility", "visible"),
            tags=tuple(tags),
            extra_data=entry.get("extra_data"),
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
