"""The pytest plugin that gives grading suites their submission and worker, and selects the suite.

Suites never import or run student code: the `worker` fixture is a `Worker` whose probes run the code in
the sandbox, and tests judge the observations it returns. The worker is shared by the whole session. It
starts loading as soon as the selected tests are known, only when one of them needs it and the submission
could be read, and the reference namespace is built meanwhile: both take seconds, on different processes.
"""

from __future__ import annotations

from typing import Any

import pytest

from autograder.grading.reference import ReferenceRunner
from autograder.ingest.extract import Submission
from autograder.profiles.profile import load_profile
from autograder.results.figures import Figures
from autograder.results.plugin import get_plugin
from autograder.worker.client import Worker

_OUTPUT_LINES = 20


def _visibility(item: pytest.Item) -> str:
    marker = item.get_closest_marker("visibility")
    return str(marker.args[0]) if marker is not None and marker.args else "visible"


def _number(item: pytest.Item) -> str:
    marker = item.get_closest_marker("number")
    return str(marker.args[0]) if marker is not None and marker.args else ""


def matches_component(item: pytest.Item, component: str) -> bool:
    """A test belongs to component "7.1.3" when its number is "7.1.3" or "7.1.3.x", or its name starts
    with "7.1.3 "."""
    number = _number(item)
    if number == component or number.startswith(component + "."):
        return True
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    return doc.strip().startswith(component + " ")


class GradingPlugin:
    """What the suites' fixtures `submission`, `worker`, `reference_runner` and `figures` give (see the suites'
    conftest, which finds this plugin with `get_grading_plugin`); `suite` "public" keeps only
    visible tests, `only` one component, `training` False leaves out the tests marked `training`, and a
    component number keeps only that component's."""

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
    ) -> None:
        if submission is None and error is None:
            raise ValueError("GradingPlugin needs a submission or the error that prevented reading it")
        if suite not in ("public", "all"):
            raise ValueError(f"suite must be 'public' or 'all', got {suite!r}")
        self.submission_value = submission
        self.error = error
        self.profile = profile
        self.suite = suite
        self.only = only
        self.training = training
        self.worker_options = dict(worker_options or {})
        self.worker_instance: Worker | None = None
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
            self.worker_instance = Worker(submission, profile=self.profile, **self.worker_options)
        return self.worker_instance

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            wanted = self.suite == "all" or _visibility(item) == "visible"
            if self.only:
                wanted = wanted and matches_component(item, self.only)
            if self.training is not True and item.get_closest_marker("training") is not None:
                wanted = wanted and bool(self.training) and matches_component(item, str(self.training))
            (keep if wanted else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Start the worker's load, then build the reference namespace while it runs."""
        if self.submission_value is None:
            return
        needs = {name for item in session.items for name in getattr(item, "fixturenames", ())}
        if "worker" in needs:
            self.worker(self.submission_value).begin()
        if "reference" in needs:
            try:
                self.reference_instance.prepare()
            except Exception:  # noqa: BLE001 - the first test that calls the reference fails with the reason
                pass

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Add what the student should know beyond single tests to the results, then stop the worker."""
        results = get_plugin(session.config)
        if results is not None:
            for line in self.summary():
                results.add_output(line)
        self.close()

    def summary(self) -> list[str]:
        lines: list[str] = []
        warning = load_profile(self.profile).calibration_warning()
        if warning is not None:
            lines.append(warning)
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


def get_grading_plugin(config: pytest.Config) -> GradingPlugin:
    """The GradingPlugin passed to pytest.main; the suites run only under `grade`, which passes one."""
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, GradingPlugin):
            return plugin
    raise RuntimeError("the grading suites run only through autograder.grading.grade, which gives them a submission")
