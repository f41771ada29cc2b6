"""`grade(...)`: ingest -> pytest over the suites with the results plugin and the grading plugin -> results.

pytest runs in this process (the trusted one); student code runs only in the worker, which starts loading
as soon as the submission is read, before this process imports torch and the suites (the grading plugin
imports them): the two interpreters' imports, seconds each, overlap. Whatever happens, a valid results file
is left at `results_path`: the results plugin writes it after every test, and a grader failure replaces it
with a fallback that lists the tests it knows of.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from autograder.ingest import IngestError, ingest
from autograder.ingest.extract import Submission
from autograder.ingest.reader import SUBMISSION_SUFFIXES
from autograder.profiles.profile import load_profile
from autograder.results.gradescope import Results, fallback_results, write_results
from autograder.results.plugin import ResultsPlugin
from autograder.worker.client import Worker
from autograder.worker.deadline import Deadline
from autograder.worker.protocol import truncate

SUITE_DIR = Path(__file__).resolve().parents[1] / "suites"
SUITES = ("public", "all")
STUDENT_OUTPUT_CHARS = 20_000
TOTAL_POINTS = 10.0  # DESIGN.md section 1: a full grade that does not add up to this says so in its output


class NothingSelected(ValueError):
    """`only` (with `suite`) selects no test: a usage error, for which no results file is written."""


class _Selection:
    """Notices a run that `only` left without tests, and keeps the results plugin from writing a file of
    zero tests over whatever `results_path` held (runs after the grading plugin has deselected)."""

    def __init__(self, results: ResultsPlugin, only: str | None) -> None:
        self.results = results
        self.only = only
        self.empty = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.only and not items:
            self.empty = True
            self.results.path = None


def find_submission(folder: str | os.PathLike[str]) -> Path | None:
    """The file to grade in a submission folder, searched recursively: a notebook if there is one, else a
    .py file; checkpoints and hidden folders are skipped; the shallowest, then alphabetically first, wins."""
    root = Path(folder)
    for suffix in SUBMISSION_SUFFIXES:
        found = [
            path
            for path in root.rglob(f"*{suffix}")
            if path.is_file()
            and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)
        ]
        if found:
            return min(found, key=lambda path: (len(path.relative_to(root).parts), str(path)))
    return None


def suite_arguments(verbose: bool = False) -> list[str]:
    """pytest's command line for the grading suites, run in this process with the grader's plugins."""
    args = [
        str(SUITE_DIR),
        "-c",
        str(SUITE_DIR / "pytest.ini"),
        "--rootdir",
        str(SUITE_DIR),
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
    ]
    return args + (["-v"] if verbose else ["-p", "no:terminal"])


def _read(submission_path: Path) -> tuple[Any, str | None]:
    path = submission_path
    if path.is_dir():
        found = find_submission(path)
        if found is None:
            return None, f"no notebook (.ipynb) or Python file (.py) was found in your submission ({path.name})"
        path = found
    try:
        return ingest(path), None
    except IngestError as error:
        return None, str(error)


def begin_worker(submission: Submission | None, profile: str, options: dict[str, Any] | None = None) -> Worker:
    """A worker for `submission` that starts loading in the background now; with no submission, a spare that
    imports while the submission is not yet known (`grade(spare=...)`, which `check --watch` uses)."""
    worker = Worker(submission, profile=profile, **(options or {}))
    try:
        worker.begin()
    except BaseException:
        worker.close()
        raise
    return worker


def _begun_worker(submission: Submission | None, profile: str, options: dict[str, Any]) -> Worker | None:
    """`begin_worker`, or None (no submission, or it cannot even be set up: the grading plugin then makes its own
    at collection, and a test reports the problem as before)."""
    if submission is None:
        return None
    try:
        return begin_worker(submission, profile, options)
    except Exception:  # noqa: BLE001 - reported where it was before: by the plugin's own worker, in a test
        return None


def grade(
    submission_path: str | os.PathLike[str],
    results_path: str | os.PathLike[str],
    *,
    profile: str = "synthetic",
    suite: str = "all",
    only: str | None = None,
    training: bool | str = True,
    html: str | os.PathLike[str] | None = None,
    worker_options: dict[str, Any] | None = None,
    verbose: bool = False,
    spare: Worker | None = None,
) -> Results:
    """Grade one submission (a file, or a folder searched for one) into `results_path` and return the
    results. `suite` "all" (the CLI's default too) runs every test, "public" the visible ones only; `only` keeps one
    component ("7.1.1") or part ("7.1"); `training` False leaves out the tests that train on the profile's
    budget, a component ("7.1.3") keeps only that component's (the corpus tests use both, to train only
    where a bug can show); `html` also writes the report page with the run's figures; `spare` is a worker
    begun without a submission, with the same options (`check --watch` starts the next one while the student
    edits), which this grade takes instead of starting one. Never raises for a bad submission; a grader failure
    still writes a fallback file; raises NothingSelected, writing nothing, when `only` selects no test."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    results_path = Path(results_path)
    submission, error = _read(Path(submission_path))
    deadline = Deadline.for_grade(load_profile(profile).deadline_minutes)
    if spare is not None and submission is not None:
        spare.assign(submission, deadline)
        worker = spare
    else:
        if spare is not None:
            spare.close()
        worker = _begun_worker(submission, profile, {"deadline": deadline, **(worker_options or {})})
    from autograder.grading.plugin import GradingPlugin  # imports torch and the probes

    try:
        grading = GradingPlugin(
            submission,
            error,
            profile=profile,
            suite=suite,
            only=only,
            training=training,
            worker_options=worker_options,
            deadline=deadline,
            worker=worker,
        )
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    complete = suite == "all" and only is None and training is True
    results_plugin = ResultsPlugin(results_path, max_total=TOTAL_POINTS if complete else None)
    selection = _Selection(results_plugin, only)
    try:
        code = pytest.main(suite_arguments(verbose), plugins=[results_plugin, grading, selection])
        if selection.empty:
            raise NothingSelected(
                f"no {'public ' if suite == 'public' else ''}test matches --only {only} (give a component such as "
                "7.1.1, a part such as 7.2, or a test number such as 7.1.1.3)"
            )
        finished = results_plugin.results
        if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR) or (not finished.tests and not only):
            raise RuntimeError(f"pytest ended with {code!r} and {len(finished.tests)} tests")
    except NothingSelected:
        raise
    except Exception as failure:  # noqa: BLE001 - any grader failure must still leave a results file
        detail = "".join(traceback.format_exception_only(type(failure), failure)).strip()
        finished = fallback_results(f"The autograder failed: {detail}", results_plugin.specs)
        write_results(finished, results_path)
        print(traceback.format_exc(), file=sys.stderr)
    finally:
        grading.close()
    if html is not None:
        from autograder.results.html import write_html  # imports torch (figures)

        write_html(
            finished,
            grading.run_figures,
            html,
            title=Path(submission_path).name,
            profile=profile,
            staff_notes=results_plugin.staff_notes(),
        )
    printed = grading.student_output()
    if printed:
        cut = len(printed) > STUDENT_OUTPUT_CHARS
        print(f"---- output of your code during grading{' (truncated)' if cut else ''} ----")
        print(truncate(printed, STUDENT_OUTPUT_CHARS))
    return finished
