"""pytest plugin that turns a grading suite's outcomes into Gradescope scores.

Use it as `pytest -p autograder.results.plugin --results-json PATH` or
`pytest.main([...], plugins=[ResultsPlugin(PATH)])`. Every collected test is one Gradescope test:

- `@pytest.mark.points(1.0)` (required): the max score. A test without it stops the run before any test
  runs, naming the test, because a silently unweighted test would change every student's total.
- `@pytest.mark.visibility("after_due_date")` (default "visible"), `@pytest.mark.number("7.2.2.3")`
  (default: position in the run, "1", "2", ...), `@pytest.mark.tags("clip", ...)`.
- The Gradescope name is the first line of the docstring, else the node id.
- The `credit` fixture gives partial credit: `credit.award(0.5, "shapes are right")` records credit that
  is kept if the test fails later (a passing test still scores full); `credit.fraction = 0.7` sets the
  score outright, pass or fail; `credit.note(text)` adds a line to the test's output.

The results file is rewritten (atomically) once all tests are collected, listing every test as "not
run yet", and after every test, so a grader that dies mid-run still leaves a valid file with the
results so far and every other test listed at 0 points.

Gradescope's visibility model: students see the top-level output and the visible tests at once, the
`after_due_date` tests after the deadline, and no total score while a test is hidden. So the top-level
output counts only the visible tests, and what only the staff should read (`add_staff_note`, a points
total that does not add up, the suite's own errors) is printed to stdout, which Gradescope shows to the
staff only (`stdout_visibility` "hidden").

Over 400 lines on purpose: one pytest plugin (`ResultsPlugin`), with the marker checks and the `credit` record
its scoring reads.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autograder.results.gradescope import (
    VISIBILITIES,
    Results,
    TestResult,
    TestSpec,
    clean_text,
    fallback_results,
    write_results,
)
from autograder.results.table import PUBLIC_HEADLINE, format_table

PLUGIN_NAME = "autograder-results"

MARKERS = {
    "points": "points(max_score): the test's weight in points (required for every test)",
    "visibility": "visibility(when): when students see the test: " + ", ".join(VISIBILITIES),
    "number": "number(text): the test number shown on Gradescope, e.g. '7.2.2.3'",
    "tags": "tags(*names): Gradescope tags for the test",
}

NOT_RUN_OUTPUT = (
    "Not run: the autograder stopped before it reached this test. This is not your fault; "
    "please contact the course staff."
)
GRADER_FAILED_NOTE = "This is not your fault: please contact the course staff."

_TOTAL_TOLERANCE = 1e-6
_TIMEOUT = re.compile(r"^Timeout \(>([\d.]+)s\)")

RESULTS_FD_ENVIRONMENT = "PS7_RESULTS_FD"
"""A pipe's write end this process inherited (from `batch`): the final results are also written there, for a
caller that must not trust files student code could rewrite. Read once and forgotten."""

DID_NOT_FINISH: pytest.StashKey[str] = pytest.StashKey()
# Where a test is listed when it does not run in collection order (the grading plugin runs some components first).
LISTED_AT = pytest.StashKey[int]()
"""Set on an item by another plugin (the grading plugin, for the grade's deadline): what the student reads
when pytest-timeout stops that test, instead of the generic time-limit message."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograder-results", "Gradescope results (autograder.results.plugin)")
    group.addoption("--results-json", metavar="PATH", default=None, help="write Gradescope's results.json here")
    group.addoption(
        "--results-max-total",
        metavar="POINTS",
        type=float,
        default=None,
        help="warn the staff (on stdout) when the tests' points do not add up to this",
    )
    group.addoption(
        "--results-stdout-visibility",
        choices=VISIBILITIES,
        default="hidden",
        help="when students may see the autograder's stdout (default: hidden)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register a ResultsPlugin from the command-line options unless one was passed to pytest.main."""
    if get_plugin(config) is None:
        plugin = ResultsPlugin(
            config.getoption("results_json"),
            max_total=config.getoption("results_max_total"),
            stdout_visibility=config.getoption("results_stdout_visibility"),
        )
        config.pluginmanager.register(plugin, PLUGIN_NAME)


def get_plugin(config: pytest.Config) -> ResultsPlugin | None:
    """The active ResultsPlugin (for conftests that add session-level output), or None."""
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ResultsPlugin):
            return plugin
    return None


class Credit:
    """Partial credit for the test that requested the `credit` fixture."""

    def __init__(self) -> None:
        self._partial: float | None = None
        self._explicit: float | None = None
        self.notes: list[str] = []
        self.data: dict[str, Any] = {}

    @property
    def fraction(self) -> float | None:
        """The fraction of the points recorded so far (None: nothing recorded)."""
        return self._explicit if self._explicit is not None else self._partial

    @fraction.setter
    def fraction(self, value: float) -> None:
        self._explicit = _fraction(value)

    def award(self, fraction: float, message: str | None = None) -> None:
        """Record partial credit, kept if the test fails afterwards; a test that passes scores full."""
        self._partial = _fraction(fraction)
        if message:
            self.note(message)

    def note(self, text: str) -> None:
        """Add a line to the test's output (shown whether it passes or fails)."""
        self.notes.append(str(text))

    def record_accuracy(self, measure: str, value: float) -> None:
        """Keep a test accuracy the trusted process measured in the test's `extra_data` (`accuracies`), for the
        course staff: `batch` puts it in its CSV. Gradescope never shows `extra_data` to students."""
        self.data.setdefault("accuracies", {})[measure] = round(float(value), 4)

    def earned(self, passed: bool) -> float:
        """The fraction of the points the test scores, given whether it passed."""
        if self._explicit is not None:
            return self._explicit
        if passed:
            return 1.0
        return self._partial or 0.0


@dataclass
class _Phase:
    outcome: str  # "passed", "failed" or "skipped", as pytest reports it
    message: str


class ResultsPlugin:
    """Collects outcomes test by test and keeps results.json (when a path is given) up to date."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_total: float | None = None,
        stdout_visibility: str = "hidden",
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.max_total = max_total
        self.stdout_visibility = stdout_visibility
        self.specs: list[TestSpec] = []
        self.extra_data: dict[str, Any] = {}
        self._messages: list[str] = []
        self._staff: list[str] = []
        self._tests: list[TestResult] = []
        self._slots: dict[str, int] = {}
        self._finished: set[str] = set()
        self._phases: dict[str, dict[str, _Phase]] = {}
        self._credits: dict[str, Credit] = {}
        self._collect_errors: list[str] = []
        self._config_error = False
        self._collect_only = False
        self._started = time.monotonic()
        self._final: Results | None = None

    # ------------------------------------------------------------------ public
    def add_output(self, text: str) -> None:
        """Add a session-level message to the results' top-level output (students read it at once)."""
        self._messages.append(str(text))

    def add_staff_note(self, text: str) -> None:
        """Add a message for the course staff only: printed to stdout when the session ends, never in the
        results' output."""
        self._staff.append(str(text))

    @property
    def results(self) -> Results:
        """The results as they stand (final once the session has finished)."""
        if self._final is not None:
            return self._final
        return self._build(final=False)

    # ------------------------------------------------------------------ hooks
    def pytest_configure(self, config: pytest.Config) -> None:
        for name, description in MARKERS.items():
            config.addinivalue_line("markers", f"{name}: {description}")
        self._collect_only = bool(config.getoption("collectonly", False))

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._started = time.monotonic()

    @pytest.fixture
    def credit(self, request: pytest.FixtureRequest) -> Credit:
        """Partial credit and notes for this test (see the module docstring)."""
        record = Credit()
        self._credits[request.node.nodeid] = record
        return record

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            lines = str(report.longreprtext).strip().splitlines()
            self._collect_errors.append(f"{report.nodeid or 'collection'}: {lines[-1] if lines else 'error'}")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        specs: list[TestSpec] = []
        problems: list[str] = []
        listed = sorted(session.items, key=lambda item: item.stash.get(LISTED_AT, 0))
        for position, item in enumerate(listed, start=1):
            spec, item_problems = _spec(item, position)
            specs.append(spec)
            problems.extend(item_problems)
        self.specs = specs
        if problems:
            self._config_error = True
            message = "the grading suite is misconfigured:\n" + "\n".join(f"- {problem}" for problem in problems)
            self._write(fallback_results(message, specs))
            raise pytest.UsageError("autograder.results.plugin: " + message)
        self._tests = [_pending(spec) for spec in specs]
        self._slots = {item.nodeid: index for index, item in enumerate(listed)}
        if not self._collect_only:
            self._write(self._build(final=False))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        message = _message(report, call)
        if _timeout_seconds(call) is not None and item.stash.get(DID_NOT_FINISH, None):
            message = item.stash[DID_NOT_FINISH]
        self._phases.setdefault(item.nodeid, {})[call.when] = _Phase(report.outcome, message)
        return report

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        index = self._slots.get(nodeid)
        phases = self._phases.pop(nodeid, {})
        record = self._credits.pop(nodeid, None)
        if index is None:
            return
        self._tests[index] = _score(self.specs[index], phases, record)
        self._finished.add(nodeid)
        self._write(self._build(final=False))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._config_error or self._collect_only:
            return
        self._final = self._build(final=True)
        if self.path is not None:
            write_results(self._final, self.path)
        report_results(self._final)
        notes = self.staff_notes()
        if notes:
            sys.stdout.write("---- for the course staff ----\n" + "\n".join(notes) + "\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.path is None or self._final is None:
            return
        terminalreporter.write_sep("=", "Gradescope results")
        terminalreporter.write_line(format_table(self._final, color=terminalreporter.hasmarkup))
        terminalreporter.write_line(f"written to {self.path}")

    # ------------------------------------------------------------------ helpers
    def _build(self, final: bool) -> Results:
        """The results as they stand. The top-level output is what a student reads before the deadline, so it
        speaks only of the visible tests (Gradescope hides the total score while any test is hidden); what
        only the staff should read goes to `staff_notes`, printed to stdout (which Gradescope shows staff only)."""
        tests = list(self._tests)
        visible = [index for index, test in enumerate(tests) if test.visibility == "visible"]
        hidden = len(tests) - len(visible)
        score = sum(tests[index].score for index in visible)
        max_score = sum(tests[index].max_score for index in visible)
        passed = sum(1 for index in visible if tests[index].status == "passed")
        finished = {self._slots[nodeid] for nodeid in self._finished if nodeid in self._slots}
        not_run = sum(1 for index in visible if index not in finished)
        lines: list[str] = []
        if final and not tests:
            lines.append(f"The autograder found no tests to run. {GRADER_FAILED_NOTE}")
        elif final:
            lines.append(
                f"{PUBLIC_HEADLINE} {score:g} / {max_score:g} points ({passed} of {len(visible)} tests passed)."
            )
            if hidden:
                lines.append("The other tests are graded and shown after the deadline.")
            if not_run:
                lines.append(f"{not_run} public test(s) did not run. {GRADER_FAILED_NOTE}")
        else:
            lines.append(
                f"Grading incomplete: {sum(index in finished for index in visible)} of {len(visible)} public tests "
                f"finished. If this message stays, the autograder stopped before the end. {GRADER_FAILED_NOTE}"
            )
        if self._collect_errors:
            lines.append(f"The autograder could not load some of its tests. {GRADER_FAILED_NOTE}")
        lines.extend(self._messages)
        return Results(
            tests=tests,
            execution_time=time.monotonic() - self._started,
            output="\n".join(lines),
            stdout_visibility=self.stdout_visibility,
            extra_data=dict(self.extra_data) or None,
        )

    def staff_notes(self) -> list[str]:
        """What only the course staff should read: tests that did not run, the suite's problems, warnings."""
        tests = list(self._tests)
        max_score = sum(test.max_score for test in tests)
        notes = []
        if len(self._finished) < len(tests):
            notes.append(f"{len(tests) - len(self._finished)} test(s) did not run.")
        notes.extend(f"Could not load: {error}" for error in self._collect_errors)
        if self.max_total is not None and abs(max_score - self.max_total) > _TOTAL_TOLERANCE:
            notes.append(
                f"Warning for the course staff: the tests' points add up to {max_score:g}, expected {self.max_total:g}."
            )
        return notes + self._staff

    def _write(self, results: Results) -> None:
        """Mid-run writes must not abort grading: a failure is reported and the next write tries again."""
        if self.path is None:
            return
        try:
            write_results(results, self.path)
        except OSError as error:
            sys.stderr.write(f"autograder.results.plugin: could not write {self.path}: {error}\n")


def report_results(results: Results) -> None:
    """Write the results document to the pipe named by `PS7_RESULTS_FD`, when there is one, and close it."""
    named = os.environ.pop(RESULTS_FD_ENVIRONMENT, None)
    if not named:
        return
    payload = json.dumps(results.to_dict(), ensure_ascii=False, allow_nan=False).encode()
    try:
        with os.fdopen(int(named), "wb") as pipe:
            pipe.write(payload)
    except (OSError, ValueError) as error:
        sys.stderr.write(f"autograder.results.plugin: could not report results on fd {named}: {error}\n")


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"credit fraction must be a number between 0 and 1, got {value!r}")
    return float(value)


def declared_spec(item: pytest.Item) -> TestSpec:
    """What a test's markers and docstring declare, read in the one place that reads them (the grading plugin
    selects the public suite and components from it). An invalid marker reads as its default here; the
    results report it as a grader error."""
    return _spec(item, 0)[0]


def _spec(item: pytest.Item, position: int) -> tuple[TestSpec, list[str]]:
    """The test's Gradescope identity from its markers and docstring, and what is wrong with them."""
    problems: list[str] = []
    max_score = 0.0
    points = item.get_closest_marker("points")
    if points is None:
        problems.append(f"{item.nodeid} has no @pytest.mark.points(...) marker (every test needs its max score)")
    else:
        value = points.args[0] if points.args else points.kwargs.get("max_score")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems.append(f"{item.nodeid}: @pytest.mark.points needs a number >= 0, got {value!r}")
        else:
            max_score = float(value)
    visibility = "visible"
    marker = item.get_closest_marker("visibility")
    if marker is not None:
        value = marker.args[0] if marker.args else None
        if value in VISIBILITIES:
            visibility = value
        else:
            problems.append(f"{item.nodeid}: @pytest.mark.visibility must be one of {VISIBILITIES}, got {value!r}")
    number = str(position)
    marker = item.get_closest_marker("number")
    if marker is not None:
        value = marker.args[0] if marker.args else None
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            number = str(value)
        else:
            problems.append(f"{item.nodeid}: @pytest.mark.number needs a string such as '7.2.2.3', got {value!r}")
    tags: tuple[str, ...] = ()
    marker = item.get_closest_marker("tags")
    if marker is not None:
        values = marker.args[0] if len(marker.args) == 1 and isinstance(marker.args[0], (list, tuple)) else marker.args
        if all(isinstance(tag, str) for tag in values):
            tags = tuple(values)
        else:
            problems.append(f"{item.nodeid}: @pytest.mark.tags takes strings, got {values!r}")
    return TestSpec(_name(item), max_score, number, visibility, tags), problems


def _name(item: pytest.Item) -> str:
    function = getattr(item, "function", None)
    doc = inspect.getdoc(function) if function is not None else None
    name = doc.strip().splitlines()[0].strip() if doc and doc.strip() else item.nodeid
    callspec = getattr(item, "callspec", None)
    if callspec is not None and name != item.nodeid:
        name = f"{name} [{callspec.id}]"
    return name


def _pending(spec: TestSpec) -> TestResult:
    return TestResult(spec.name, spec.number, 0.0, spec.max_score, "failed", NOT_RUN_OUTPUT, spec.visibility, spec.tags)


def _score(spec: TestSpec, phases: dict[str, _Phase], record: Credit | None) -> TestResult:
    """Combine a test's setup/call/teardown outcomes and its credit into its Gradescope entry."""
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    messages: list[str] = []
    fraction = 0.0
    passed = False
    if setup is not None and setup.outcome == "failed":
        messages.append(f"This test could not run: {setup.message}")
    elif setup is not None and setup.outcome == "skipped":
        messages.append(f"Skipped (0 points): {setup.message}")
    elif call is None:
        messages.append(NOT_RUN_OUTPUT)
    elif call.outcome == "skipped":
        messages.append(f"Skipped (0 points): {call.message}")
    else:
        passed = call.outcome == "passed"
        if not passed:
            messages.append(call.message)
        if teardown is not None and teardown.outcome == "failed":
            passed = False
            messages.append(f"Error after the test: {teardown.message}")
        fraction = record.earned(passed) if record is not None else float(passed)
    if record is not None:
        messages.extend(record.notes)
    score = spec.max_score * fraction
    return TestResult(
        name=spec.name,
        number=spec.number,
        score=score,
        max_score=spec.max_score,
        status="passed" if passed and fraction >= 1.0 else "failed",
        output="\n\n".join(message for message in messages if message),
        visibility=spec.visibility,
        tags=spec.tags,
        extra_data=dict(record.data) if record is not None and record.data else None,
    )


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """What a student should read about this phase: the assertion's message, not the grader's traceback."""
    if report.passed:
        return ""
    wasxfail = getattr(report, "wasxfail", None)
    if report.skipped and wasxfail is not None:
        return f"expected to fail ({wasxfail})" if wasxfail else "expected to fail"
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        return reason.removeprefix("Skipped: ")
    excinfo = call.excinfo
    if excinfo is None:
        return str(report.longreprtext).strip().splitlines()[-1] if report.longreprtext.strip() else "failed"
    error = excinfo.value
    seconds = _timeout_seconds(call)
    if seconds is not None:
        return f"Time limit exceeded: this test was stopped after {seconds:g} s."
    if isinstance(error, AssertionError):
        return _assertion_text(clean_text(error, None))
    if isinstance(error, pytest.fail.Exception | pytest.skip.Exception):
        return clean_text(error.msg, None)
    if isinstance(error, pytest.FixtureLookupError):
        return f"internal grader error: fixture {error.argname!r} not found"
    detail = clean_text(error, None)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _timeout_seconds(call: pytest.CallInfo[None]) -> float | None:
    """The time limit pytest-timeout stopped this phase at, or None. Its failure is `pytest.fail("Timeout
    (>Ns) ...")`, or, when pytest runs without its terminal plugin (as `grade` runs it), an empty
    AssertionError raised inside its SIGALRM handler before it gets to `pytest.fail`."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    error = excinfo.value
    if isinstance(error, pytest.fail.Exception):
        match = _TIMEOUT.match(str(error.msg))
        return float(match.group(1)) if match else None
    if isinstance(error, AssertionError):
        for entry in excinfo.traceback:
            if entry.frame.code.name == "timeout_sigalrm" and "pytest_timeout" in str(entry.path):
                settings = entry.frame.f_locals.get("settings")
                return float(getattr(settings, "timeout", 0) or 0)
    return None


def _assertion_text(text: str) -> str:
    """Keep `assert x, "message"`'s message and drop pytest's rewritten `assert ...` explanation after it;
    a bare `assert` keeps its explanation, the only information there is."""
    lines = text.splitlines()
    for index, line in enumerate(lines[1:], start=1):
        if line.startswith("assert "):
            return "\n".join(lines[:index]).rstrip()
    return text.strip() or "assertion failed"
