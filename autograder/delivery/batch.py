"""Grade a folder of submissions: one `grade` subprocess per submission, several at once, on this machine or
on a Dask cluster (`executors`), resumable, with per-submission results, a CSV of per-component scores joined to
the export's names and e-mails, and a histogram of totals (both written by `scores`).

Layout: one sub-folder or one `.ipynb`/`.py` file per student in FOLDER. That is what Gradescope's
"Export Submissions" gives once unzipped (a folder holding `submission_metadata.yml` and one
`submission_<id>/` folder per submission); the export's single top folder may be given instead.

Each submission is graded by `python -m autograder grade` in its own process, in a private temporary folder of
the node, so a submission that crashes, hangs or exhausts the grader costs only its own row. What a grade left
behind comes back to this process, which records it in
OUT/<id>/batch.json next to OUT/<id>/results.json; a later run skips a submission whose record says it
was graded, with the same content, profile and suite, and whose results file is still the one recorded.
Submissions that could not be graded are retried on every run.

Scores come from what each grade process reports on a pipe of its own (`PS7_RESULTS_FD`, written by the
results plugin when the grade ends; the worker never holds that descriptor), never from files in folders
student code might write to: results.json is rewritten from the report, and its digest is recorded. Without
a separate user for student code (the grader is not root) a batch refuses to run unless told
`unsafe_same_user`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from autograder.assignment.source import REPO_ROOT
from autograder.delivery.devices import detect_devices
from autograder.delivery.executors import (
    EXECUTORS,
    GRADER_ERROR,
    OK,
    DaskExecutor,
    ExecutorError,
    GradeTask,
    LocalExecutor,
    TaskResult,
    last_line,
    pack_submission,
)
from autograder.delivery.scores import (
    export_root,
    histogram_path,
    read_roster,
    usable_results,
    write_csv,
    write_histogram,
)
from autograder.delivery.warm_start import fork_server_is_private
from autograder.ingest.reader import SUBMISSION_SUFFIXES
from autograder.results import Results
from autograder.worker.isolation import same_user_refusal

RECORD_NAME = "batch.json"
RESULTS_NAME = "results.json"
LOG_NAME = "grade.log"
# How both the grader's fallback results and run_autograder's begin: the grader broke, not the submission.
_GRADER_FAILED = "The autograder failed"


class BatchError(Exception):
    """The batch cannot start (no submissions, clashing ids, profile not preparable)."""


@dataclass(frozen=True)
class BatchSubmission:
    """One student's work; `id` names its output folder and its CSV row."""

    id: str
    path: Path  # what `grade` is given: the student's file, or their folder


@dataclass(frozen=True)
class Outcome:
    """What grading one submission gave: its results when graded, the reason when the grader failed."""

    submission: BatchSubmission
    status: str  # OK or GRADER_ERROR
    reason: str = ""
    results: Results | None = None
    skipped: bool = False  # graded by an earlier run


@dataclass(frozen=True)
class Options:
    """What every `grade` of the batch is run with (a graded submission is reused only under the same)."""

    profile: str
    suite: str
    timeout: float
    force: bool = False
    unsafe_same_user: bool = False  # grade even when student code would run as this user (see isolation)


def find_submissions(folder: Path, exclude: Path | None = None) -> list[BatchSubmission]:
    """The submissions in `folder`, by id (a sub-folder's name, or a file's name without its suffix)."""
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder")
    folder = export_root(folder)
    children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    skip = exclude.resolve() if exclude is not None else None
    found: dict[str, list[Path]] = {}
    for child in sorted(children):
        if child.resolve() == skip:
            continue
        if child.is_dir() or (child.is_file() and child.suffix in SUBMISSION_SUFFIXES):
            found.setdefault(child.name if child.is_dir() else child.stem, []).append(child)
    clashes = {name: paths for name, paths in found.items() if len(paths) > 1}
    if clashes:
        listed = "; ".join(f"{name}: {', '.join(str(path) for path in paths)}" for name, paths in clashes.items())
        raise BatchError(f"several submissions share an id ({listed}); keep one per student")
    if not found:
        raise BatchError(f"{folder} holds no submission (a sub-folder or an .ipynb/.py file per student)")
    return [BatchSubmission(name, paths[0]) for name, paths in sorted(found.items())]


def content_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's file names and contents: a changed submission is regraded."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for item in sorted(item for item in path.rglob("*") if item.is_file()):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(item.read_bytes()).digest())
    return digest.hexdigest()


class _Grader:
    """Decides what to grade (resume), turns submissions into tasks, and records each task's result in OUT."""

    def __init__(self, out: Path, options: Options, jobs: int) -> None:
        self.out = out
        self.options = options
        self.python = os.environ.get("PS7_PYTHON") or sys.executable
        self.env = dict(os.environ)
        # Torch would start one thread per core in every job; share the cores out instead.
        self.env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
        self.digests: dict[str, str] = {}

    def prepare(self) -> None:
        """Prepare the profile once, before the jobs start (several `grade`s would all prepare it at once)."""
        argv = [self.python, "-m", "autograder", "prepare", "--profile", self.options.profile]
        if subprocess.run(argv, cwd=REPO_ROOT, env=self.env, check=False).returncode != 0:
            raise BatchError(f"preparing profile {self.options.profile!r} failed (see above); nothing was graded")

    def done_before(self, submission: BatchSubmission, digest: str) -> Outcome | None:
        folder = self.out / submission.id
        try:
            record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        wanted = {"status": OK, "digest": digest, "profile": self.options.profile, "suite": self.options.suite}
        if not isinstance(record, dict) or any(record.get(key) != value for key, value in wanted.items()):
            return None
        try:
            text = (folder / RESULTS_NAME).read_bytes()
        except OSError:
            return None
        results = usable_results(text)
        if results is None or hashlib.sha256(text).hexdigest() != record.get("results_sha256"):
            return None  # changed since the batch wrote it: regrade rather than trust it
        return Outcome(submission, OK, results=results, skipped=True)

    def task(self, submission: BatchSubmission, threads: int | None, networked: bool) -> GradeTask | Outcome:
        """The task that grades `submission`, or its earlier outcome when an earlier run graded it already."""
        digest = content_digest(submission.path)
        self.digests[submission.id] = digest
        if not self.options.force:
            earlier = self.done_before(submission, digest)
            if earlier is not None:
                return earlier
        folder = self.out / submission.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD_NAME).unlink(missing_ok=True)
        (folder / RESULTS_NAME).unlink(missing_ok=True)
        return GradeTask(
            id=submission.id,
            name=submission.path.name,
            files=pack_submission(submission.path),
            profile=self.options.profile,
            suite=self.options.suite,
            timeout=self.options.timeout,
            unsafe_same_user=self.options.unsafe_same_user,
            threads=threads,
            networked=networked,
        )

    def record(self, submission: BatchSubmission, result: TaskResult) -> Outcome:
        """Write what a node returned into OUT/<id>/: the reported results, the log and the batch's record."""
        folder = self.out / submission.id
        folder.mkdir(parents=True, exist_ok=True)
        _replace(folder / LOG_NAME, result.log)
        status, reason = result.status, result.reason
        results = usable_results(result.reported) if status == OK else None
        if status == OK:
            if results is None:
                status, reason = GRADER_ERROR, f"the grader reported no valid results (see {folder / LOG_NAME})"
            elif results.output.startswith(_GRADER_FAILED) or not results.tests:
                status, reason = GRADER_ERROR, last_line(results.output)
        text = result.reported if status == OK else b""
        if status == OK:  # whatever is in OUT was not written by this batch; the report is the truth
            _replace(folder / RESULTS_NAME, text)
        else:
            (folder / RESULTS_NAME).unlink(missing_ok=True)
        record = {
            "submission": str(submission.path),
            "digest": self.digests.get(submission.id) or content_digest(submission.path),
            "profile": self.options.profile,
            "suite": self.options.suite,
            "status": status,
            "reason": reason,
            "seconds": result.seconds,
            "host": result.host,
            "device": result.device,
            "results_sha256": hashlib.sha256(text).hexdigest() if status == OK else None,
        }
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return Outcome(submission, status, reason, results if status == OK else None)


def _replace(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, replacing whatever is there (a link included, not followed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
    os.replace(temporary, path)


def run_batch(
    folder: Path,
    out: Path,
    options: Options,
    *,
    jobs: int = 1,
    csv_path: Path | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    devices: Sequence[str] | None = None,
) -> list[Outcome]:
    """Grade every submission in `folder` into `out` on `executor` (see `executors`), then write the CSV
    (default OUT/scores.csv) and the histogram next to it. `devices`: the GPUs to hand out, one grade per
    device at a time (None: those this machine shows)."""
    if jobs < 1:
        raise BatchError(f"--jobs must be at least 1, got {jobs}")
    if executor not in EXECUTORS:
        raise BatchError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise BatchError(f"--scheduler is for --executor dask, not {executor}")
    refusal = None if options.unsafe_same_user else same_user_refusal("batch")
    if refusal is not None:
        raise BatchError(refusal)
    submissions = find_submissions(folder, exclude=out)
    roster = read_roster(folder)
    devices = list(detect_devices() if devices is None else devices)
    grader = _Grader(out, options, jobs)
    grader.prepare()
    threads = None if executor == "slurm" or scheduler else max(1, (os.cpu_count() or 1) // jobs)
    by_id = {submission.id: submission for submission in submissions}
    outcomes: list[Outcome] = []
    with tqdm(total=len(submissions), unit="submission", desc="grading") as progress:

        def done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if outcome.status != OK:
                progress.write(f"{outcome.submission.id}: {outcome.status}: {outcome.reason}")
            progress.update()

        tasks: list[GradeTask] = []
        for submission in submissions:
            task = grader.task(submission, threads, networked=executor != "local")
            if isinstance(task, Outcome):
                done(task)
            else:
                tasks.append(task)
        engine = (
            # PS7_PYTHON names the command each grade runs with (another interpreter, a wrapper): a fresh one each.
            LocalExecutor(jobs, devices, warm=not os.environ.get("PS7_PYTHON") and fork_server_is_private())
            if executor == "local"
            else DaskExecutor(executor, jobs, scheduler=scheduler, devices=devices)
        )
        try:
            engine.run(tasks, lambda task, result: done(grader.record(by_id[task.id], result)))
        except ExecutorError as error:
            raise BatchError(str(error)) from error
    outcomes.sort(key=lambda outcome: outcome.submission.id)
    csv_path = csv_path or out / "scores.csv"
    write_csv(outcomes, csv_path, roster)
    graded = [outcome.results for outcome in outcomes if outcome.results is not None]
    top = max((results.max_score for results in graded), default=None)
    write_histogram([results.total_score for results in graded], histogram_path(csv_path), top=top)
    return outcomes


def batch_command(
    folder: Path,
    options: Options,
    *,
    out: Path | None = None,
    csv_path: Path | None = None,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    devices: Sequence[str] | None = None,
) -> int:
    """`python -m autograder batch`: grade, print a summary; 1 when some submission could not be graded."""
    folder = folder.resolve()
    out = out or folder.with_name(f"{folder.name}-graded")
    csv_path = csv_path or out / "scores.csv"
    outcomes = run_batch(
        folder, out, options, jobs=jobs, csv_path=csv_path, executor=executor, scheduler=scheduler, devices=devices
    )
    errors = [outcome.submission.id for outcome in outcomes if outcome.status == GRADER_ERROR]
    skipped = sum(outcome.skipped for outcome in outcomes)
    print(f"{len(outcomes)} submissions: {skipped} graded by an earlier run, {len(errors)} grader errors")
    print(f"results in {out}{os.sep}<id>{os.sep}, scores in {csv_path}, histogram in {histogram_path(csv_path)}")
    if errors:
        print(f"could not grade {', '.join(errors)}; run again to retry them", file=sys.stderr)
    return 1 if errors else 0
