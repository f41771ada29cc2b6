"""The pytest plugin that gives grading suites their submission and worker, and selects the suite.

Suites never import or run student code: the `worker` fixture is a `Worker` whose probes run the code in
the sandbox, and tests judge the observations it returns. The worker is shared by the whole session. It
starts loading as soon as the selected tests are known, only when one of them needs it and the submission
could be read, and the reference namespace is built meanwhile: both take seconds, on different processes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from autograder.grading.memory import MemoryLimit, grader_memory_bytes
from autograder.grading.reference import ReferenceRunner
from autograder.ingest.extract import Submission
from autograder.profiles.profile import load_profile
from autograder.profiles.timing import training_test_seconds, worker_limits
from autograder.results import numbers
from autograder.results.figures import Figures
from autograder.results.plugin import DID_NOT_FINISH, LISTED_AT, declared_spec, get_plugin
from autograder.worker.client import Worker
from autograder.worker.deadline import Deadline

_OUTPUT_LINES = 20
# The components the standard parts replace elsewhere: their tests run first, before the worker is given the
# standard parts (`Worker.call`), so that what they observe comes from a process that never held them.
OWN_PART_COMPONENTS = ("7.1.1", "7.1.2", "7.2.1")


def matches_component(item: pytest.Item, component: str) -> bool:
    """A test belongs to component "7.1.3" when its number is "7.1.3" or "7.1.3.x", or its name starts
    with "7.1.3 "."""
    spec = declared_spec(item)
    return numbers.within(spec.number, component) or spec.name.startswith(component + " ")


def component_of(item: pytest.Item) -> str:
    """The component a test grades ("7.1.3" for test 7.1.3.2 or a test named "7.1.3 ..."), else its node id."""
    spec = declared_spec(item)
    return numbers.component_of(spec.number) or numbers.component_of(spec.name) or item.nodeid


def _own_timeout(item: pytest.Item) -> float:
    """The test's pytest-timeout limit in seconds (its marker, else the ini's `timeout`; 0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        value = marker.args[0] if marker.args else marker.kwargs["timeout"]
    else:
        value = item.config.getini("timeout") or 0
    return float(value or 0)


class GradingPlugin:
    """What the suites' fixtures `submission`, `worker`, `reference_runner` and `figures` give (see the suites'
    conftest, which finds this plugin with `get_grading_plugin`); `suite` "public" keeps only
    visible tests, `only` one component, `training` False leaves out the tests marked `training`, and a
    component number keeps only that component's.

    Time: `deadline` (default: the profile's, from now) bounds the whole grade: every worker call and load,
    and every test's pytest-timeout, end by it, and the tests after it fail at once with its message. A
    component one of whose worker calls ran out of time (or whose test hit its time limit) fails its
    remaining tests at once with "did not finish", naming that call from this process's own records.
    Memory: `memory_bytes` ("default": `grading.memory.grader_memory_bytes()`; None: none) bounds this process's
    private memory while grading. `worker`: one already begun for `submission` (by `grade`, before this process
    imported torch), used instead of a new one, and closed at collection when no selected test needs it."""

    def __init__(
        self,
        submission: Submission | None,
        error: str | None = None,
        *,
        profile: str = "synthetic",
        suite: str = "public",
        only: str | None = None,
        training: bool | str = True,
        worker_options: dict[str, Any] | None = None,
        deadline: Deadline | None = None,
        memory_bytes: int | None | str = "default",
        worker: Worker | None = None,
    ) -> None:
        if submission is None and error is None:
            raise ValueError("GradingPlugin needs a submission or the error that prevented reading it")
        if suite not in ("public", "all"):
            raise ValueError(f"suite must be 'public' or 'all', got {suite!r}")
        if suite == "all" and load_profile(profile).thresholds is None:
            raise ValueError(f"profile {profile!r} has no thresholds: it runs the public suite only")
        self.submission_value = submission
        self.error = error
        self.profile = profile
        self.suite = suite
        self.only = only
        self.training = training
        self.worker_options = dict(worker_options or {})
        self.deadline = deadline or Deadline.for_grade(load_profile(profile).deadline_minutes)
        self.stopped: dict[str, str] = {}  # component -> what ran out of time in it
        self.memory = MemoryLimit(grader_memory_bytes() if memory_bytes == "default" else memory_bytes)
        self.worker_instance: Worker | None = worker
        self.reference_instance = ReferenceRunner(profile)
        self.run_figures = Figures()

    def readable_submission(self) -> Submission:
        """The ingested submission; the test asking for it fails with the reason when it could not be read."""
        if self.submission_value is None:
            pytest.fail(f"your submission could not be read: {self.error}", pytrace=False)
        return self.submission_value

    def worker(self, submission: Submission) -> Worker:
        """The sandboxed worker holding the provided code and the submission's definitions."""
        if self.worker_instance is None:
            limits = worker_limits(load_profile(self.profile))
            options = {"deadline": self.deadline, "limits": limits, **self.worker_options}
            self.worker_instance = Worker(submission, profile=self.profile, **options)
        return self.worker_instance

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            wanted = self.suite == "all" or declared_spec(item).visibility == "visible"
            if self.only:
                wanted = wanted and matches_component(item, self.only)
            if self.training is not True and item.get_closest_marker("training") is not None:
                wanted = wanted and bool(self.training) and matches_component(item, str(self.training))
            (keep if wanted else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        for position, item in enumerate(keep):
            item.stash[LISTED_AT] = position  # the results list them in collection order all the same
        items[:] = sorted(keep, key=lambda item: component_of(item) not in OWN_PART_COMPONENTS)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Grade under the trusted process's memory limit (lifted again by `close`)."""
        self.memory.apply()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Start the worker's load, then build the reference namespace while it runs."""
        if self.submission_value is None:
            return
        needs = {name for item in session.items for name in getattr(item, "fixturenames", ())}
        if "worker" in needs:
            self.worker(self.submission_value).begin()
        elif self.worker_instance is not None:
            self.worker_instance.close()
            self.worker_instance = None
        if "reference" in needs:
            try:
                self.reference_instance.prepare()
            except Exception:  # noqa: BLE001 - the first test that calls the reference fails with the reason
                pass

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        """Give a training test the time its profile's budgets need (`profiles.timing`), bound the test's time
        limit by the grade's deadline (pytest-timeout reads the closest marker), and record a component that
        ran out of time during it."""
        own = _own_timeout(item)
        if item.get_closest_marker("training") is not None and own > 0:
            needed = training_test_seconds(load_profile(self.profile))
            if needed > own:
                item.add_marker(pytest.mark.timeout(needed), append=False)
                own = needed
        remaining = self.deadline.remaining()
        if 0 < remaining and (own <= 0 or remaining < own):
            item.add_marker(pytest.mark.timeout(remaining), append=False)
            item.stash[DID_NOT_FINISH] = self.deadline.message
        worker = self.worker_instance
        seen = len(worker.timeouts) if worker is not None else 0
        try:
            return (yield)
        finally:
            worker = self.worker_instance
            component = component_of(item)
            if worker is not None and len(worker.timeouts) > seen and component not in self.stopped:
                self.stopped[component] = worker.timeouts[seen]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Fail at once a test that cannot finish: the grade's deadline passed, or its component ran out of
        time in an earlier test."""
        if self.deadline.expired:
            pytest.fail(self.deadline.message, pytrace=False)
        reason = self.stopped.get(component_of(item))
        if reason is not None:
            pytest.fail(
                f"did not finish: an earlier test of {component_of(item)} ran out of time ({reason}), so the "
                "rest of its tests were not run; your code may loop forever or be far too slow",
                pytrace=False,
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A test stopped by its own time limit stops its component too (the call that was running is named
        by the worker's record when there is one)."""
        report = yield
        if call.when == "call" and _stopped_by_timeout(call):
            self.stopped.setdefault(component_of(item), f"the test `{item.name}` reached its time limit")
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Add what the student should know beyond single tests to the results, then stop the worker."""
        results = get_plugin(session.config)
        if results is not None:
            for line in self.summary():
                results.add_output(line)
            for line in self.staff_notes():
                results.add_staff_note(line)
        self.close()

    def staff_notes(self) -> list[str]:
        """What only the course staff should read (Gradescope shows the grader's stdout to staff only)."""
        warning = load_profile(self.profile).calibration_warning()
        return [warning] if warning is not None else []

    def summary(self) -> list[str]:
        lines: list[str] = []
        if self.error is not None:
            lines.append(f"Your submission could not be read: {self.error}")
        skipped = [text for text in getattr(self.submission_value, "diagnostics", []) if "skipped" in text]
        if skipped:
            lines.append("Parts of your notebook the grader could not read (their definitions are missing):")
            lines.extend(f"- {text}" for text in skipped[:_OUTPUT_LINES])
        worker = self.worker_instance
        if worker is not None:
            if worker.load_errors:
                lines.append("These parts of your notebook could not be loaded, so the tests that use them fail:")
                lines.extend(
                    f"- {name if name.startswith('cell ') else f'`{name}`'}: {text.splitlines()[0]}"
                    for name, text in worker.load_errors.items()
                )
            if worker.plan.diagnostics:
                lines.append("What the grader ran of your notebook's other top-level statements, and what it left out:")
                lines.extend(f"- {text}" for text in worker.plan.diagnostics[:_OUTPUT_LINES])
            for where, statement, error in worker.import_errors[:_OUTPUT_LINES]:
                lines.append(f"- {where}: `{statement}` failed in the grader ({error}); it was skipped")
            lines.extend(f"- {note}" for note in worker.notes if note.startswith("cell "))
        return lines

    def student_output(self) -> str:
        """What student code printed during grading (for the grader's hidden stdout)."""
        if self.worker_instance is None:
            return ""
        return "\n".join(self.worker_instance.stdout_log)

    def close(self) -> None:
        if self.worker_instance is not None:
            self.worker_instance.close()
        self.memory.restore()


def _stopped_by_timeout(call: pytest.CallInfo[None]) -> bool:
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, pytest.fail.Exception):
        return str(error.msg).startswith("Timeout (>")
    return isinstance(error, AssertionError) and any(
        entry.frame.code.name == "timeout_sigalrm" for entry in call.excinfo.traceback
    )


def get_grading_plugin(config: pytest.Config) -> GradingPlugin:
    """The GradingPlugin passed to pytest.main; the suites run only under `grade`, which passes one."""
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, GradingPlugin):
            return plugin
    raise RuntimeError("the grading suites run only through autograder.grading.grade, which gives them a submission")
