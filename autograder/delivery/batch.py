"""Grade a folder of submissions on a TA's machine: one `grade` subprocess per submission, several at once,
resumable, with per-submission results, a CSV of per-component scores and a histogram of totals.

Layout: one sub-folder or one `.ipynb`/`.py` file per student in FOLDER. That is what Gradescope's
"Export Submissions" gives once unzipped (a folder holding `submission_metadata.yml` and one
`submission_<id>/` folder per submission); the export's single top folder may be given instead.

Each submission is graded by `python -m autograder grade` in its own process, so a submission that
crashes, hangs or exhausts the grader costs only its own row. What a grade left behind is recorded in
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

import csv
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from autograder.results.plugin import RESULTS_FD_ENVIRONMENT
from autograder.worker.isolation import UNSAFE_SAME_USER_FLAG, same_user_refusal

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBMISSION_SUFFIXES = (".ipynb", ".py")
METADATA_NAME = "submission_metadata.yml"
RECORD_NAME = "batch.json"
RESULTS_NAME = "results.json"
LOG_NAME = "grade.log"
OK, GRADER_ERROR = "ok", "grader-error"
# How both the grader's fallback results and run_autograder's begin: the grader broke, not the submission.
_GRADER_FAILED = "The autograder failed"
_COMPONENT = re.compile(r"\d+\.\d+\.\d+")
OTHER = "other"  # the column of tests whose name and number carry no component
_BINS = 20
_REPORT_WAIT_SECONDS = 10.0  # after the grade exits, for its pipe to drain (a child still holding it: no more)
_MAX_REPORT_BYTES = 16 * 1024**2


class BatchError(Exception):
    """The batch cannot start (no submissions, clashing ids, profile not preparable)."""


@dataclass(frozen=True)
class Submission:
    """One student's work; `id` names its output folder and its CSV row."""

    id: str
    path: Path  # what `grade` is given: the student's file, or their folder


@dataclass(frozen=True)
class Outcome:
    """What grading one submission gave: its results when graded, the reason when the grader failed."""

    submission: Submission
    status: str  # OK or GRADER_ERROR
    reason: str = ""
    results: dict[str, Any] | None = None
    skipped: bool = False  # graded by an earlier run


@dataclass(frozen=True)
class Options:
    """What every `grade` of the batch is run with (a graded submission is reused only under the same)."""

    profile: str
    suite: str
    timeout: float
    force: bool = False
    unsafe_same_user: bool = False  # grade even when student code would run as this user (see isolation)


def find_submissions(folder: Path, exclude: Path | None = None) -> list[Submission]:
    """The submissions in `folder`, by id (a sub-folder's name, or a file's name without its suffix)."""
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder")
    children = [child for child in folder.iterdir() if not child.name.startswith(".")]
    folders = [child for child in children if child.is_dir()]
    if not (folder / METADATA_NAME).exists() and len(folders) == 1 and (folders[0] / METADATA_NAME).exists():
        return find_submissions(folders[0], exclude)  # the export's top folder
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
    return [Submission(name, paths[0]) for name, paths in sorted(found.items())]


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


def read_results(path: Path) -> dict[str, Any] | None:
    """The results file as a dict when it is usable (Gradescope's shape, finite scores), else None."""
    try:
        return parse_results(path.read_bytes())
    except OSError:
        return None


def parse_results(text: bytes) -> dict[str, Any] | None:
    """A results document as a dict when it is usable (Gradescope's shape, finite scores), else None."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
        return None
    for test in document["tests"]:
        if not isinstance(test, dict) or not all(_is_number(test.get(key)) for key in ("score", "max_score")):
            return None
    if "score" in document and not _is_number(document["score"]):
        return None
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def total_score(results: dict[str, Any]) -> float:
    """The top-level score when given (Gradescope uses it), else the sum of the tests' scores."""
    if "score" in results:
        return float(results["score"])
    return sum(float(test["score"]) for test in results["tests"])


def component_of(test: dict[str, Any]) -> str:
    """The component "7.1.1" of a test numbered "7.1.1.2" or named "7.1.1 Encoder: ..."; else OTHER."""
    for text in (str(test.get("number") or ""), str(test.get("name") or "")):
        match = _COMPONENT.match(text)
        if match:
            return match.group()
    return OTHER


def component_scores(results: dict[str, Any]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for test in results["tests"]:
        component = component_of(test)
        scores[component] = scores.get(component, 0.0) + float(test["score"])
    return scores


def _sort_key(component: str) -> tuple[int, ...]:
    return tuple(int(part) for part in component.split(".")) if component != OTHER else (10**9,)


class _Grader:
    """Runs `grade` subprocesses and remembers the running ones, so an interrupted batch stops them all."""

    def __init__(self, out: Path, options: Options, jobs: int) -> None:
        self.out = out
        self.options = options
        self.python = os.environ.get("PS7_PYTHON") or sys.executable
        self.env = dict(os.environ)
        # Torch would start one thread per core in every job; share the cores out instead.
        self.env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Prepare the profile once, before the jobs start (several `grade`s would all prepare it at once)."""
        argv = [self.python, "-m", "autograder", "prepare", "--profile", self.options.profile]
        if subprocess.run(argv, cwd=REPO_ROOT, env=self.env, check=False).returncode != 0:
            raise BatchError(f"preparing profile {self.options.profile!r} failed (see above); nothing was graded")

    def done_before(self, submission: Submission, digest: str) -> Outcome | None:
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
        results = parse_results(text)
        if results is None or hashlib.sha256(text).hexdigest() != record.get("results_sha256"):
            return None  # changed since the batch wrote it: regrade rather than trust it
        return Outcome(submission, OK, results=results, skipped=True)

    def grade(self, submission: Submission) -> Outcome:
        digest = content_digest(submission.path)
        if not self.options.force:
            earlier = self.done_before(submission, digest)
            if earlier is not None:
                return earlier
        folder = self.out / submission.id
        folder.mkdir(parents=True, exist_ok=True)
        results_path = folder / RESULTS_NAME
        (folder / RECORD_NAME).unlink(missing_ok=True)
        results_path.unlink(missing_ok=True)
        argv = [self.python, "-m", "autograder", "grade", str(submission.path.resolve())]
        argv += ["--results", str(results_path), "--profile", self.options.profile, "--suite", self.options.suite]
        argv += [UNSAFE_SAME_USER_FLAG] if self.options.unsafe_same_user else []
        started = time.monotonic()
        status, reason, reported = self._run(argv, folder / LOG_NAME)
        results = parse_results(reported)
        if status == OK:
            if results is None:
                status, reason = GRADER_ERROR, f"the grader reported no valid results (see {folder / LOG_NAME})"
            elif str(results.get("output", "")).startswith(_GRADER_FAILED) or not results["tests"]:
                status, reason = GRADER_ERROR, _last_line(str(results.get("output", "")))
        text = reported if status == OK else b""
        if status == OK:  # the grade's own file may have been rewritten since; the report is the truth
            _replace(results_path, text)
        record = {
            "submission": str(submission.path),
            "digest": digest,
            "profile": self.options.profile,
            "suite": self.options.suite,
            "status": status,
            "reason": reason,
            "seconds": round(time.monotonic() - started, 1),
            "results_sha256": hashlib.sha256(text).hexdigest() if status == OK else None,
        }
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return Outcome(submission, status, reason, results if status == OK else None)

    def _run(self, argv: list[str], log: Path) -> tuple[str, str, bytes]:
        """Run one grade: (status, reason, the results document it reported on its pipe)."""
        read_end, write_end = os.pipe()
        env = {**self.env, RESULTS_FD_ENVIRONMENT: str(write_end)}
        reported = bytearray()
        try:
            with log.open("wb") as stream:
                process = subprocess.Popen(
                    argv, cwd=REPO_ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT, pass_fds=(write_end,)
                )
                os.close(write_end)
                write_end = -1
                reader = threading.Thread(target=_read_all, args=(read_end, reported), daemon=True)
                reader.start()
                with self._lock:
                    self._running.add(process)
                try:
                    code = process.wait(timeout=self.options.timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    return GRADER_ERROR, f"grading took longer than {self.options.timeout:g} s and was stopped", b""
                finally:
                    with self._lock:
                        self._running.discard(process)
                reader.join(timeout=_REPORT_WAIT_SECONDS)
        finally:
            if write_end >= 0:
                os.close(write_end)
        if code != 0:
            reason = f"the grader exited with status {code}: {_last_line(log.read_text(errors='replace'))}"
            return GRADER_ERROR, reason, b""
        return OK, "", bytes(reported)

    def stop_all(self) -> None:
        with self._lock:
            for process in self._running:
                process.kill()


def _read_all(fd: int, into: bytearray) -> None:
    """Read a pipe to its end (when every process holding its write end has exited or closed it)."""
    try:
        while chunk := os.read(fd, 1 << 16):
            into += chunk
            if len(into) > _MAX_REPORT_BYTES:
                into.clear()  # unusable: parse_results refuses the empty report
                break
    finally:
        os.close(fd)


def _replace(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, replacing whatever is there (a link included, not followed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
    os.replace(temporary, path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def run_batch(
    folder: Path,
    out: Path,
    options: Options,
    *,
    jobs: int = 1,
    csv_path: Path | None = None,
) -> list[Outcome]:
    """Grade every submission in `folder` into `out`, then write the CSV (default OUT/scores.csv) and the
    histogram next to it."""
    if jobs < 1:
        raise BatchError(f"--jobs must be at least 1, got {jobs}")
    refusal = None if options.unsafe_same_user else same_user_refusal("batch")
    if refusal is not None:
        raise BatchError(refusal)
    submissions = find_submissions(folder, exclude=out)
    grader = _Grader(out, options, jobs)
    grader.prepare()
    outcomes: list[Outcome] = []
    with (
        tqdm(total=len(submissions), unit="submission", desc="grading") as progress,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        futures = [pool.submit(grader.grade, submission) for submission in submissions]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                if outcome.status != OK:
                    progress.write(f"{outcome.submission.id}: {outcome.status}: {outcome.reason}")
                progress.update()
        except BaseException:
            for future in futures:
                future.cancel()
            grader.stop_all()
            raise
    outcomes.sort(key=lambda outcome: outcome.submission.id)
    csv_path = csv_path or out / "scores.csv"
    write_csv(outcomes, csv_path)
    graded = [outcome.results for outcome in outcomes if outcome.results is not None]
    top = max((sum(float(test["max_score"]) for test in results["tests"]) for results in graded), default=None)
    write_histogram([total_score(results) for results in graded], histogram_path(csv_path), top=top)
    return outcomes


def batch_command(
    folder: Path, options: Options, *, out: Path | None = None, csv_path: Path | None = None, jobs: int = 1
) -> int:
    """`python -m autograder batch`: grade, print a summary; 1 when some submission could not be graded."""
    folder = folder.resolve()
    out = out or folder.with_name(f"{folder.name}-graded")
    csv_path = csv_path or out / "scores.csv"
    outcomes = run_batch(folder, out, options, jobs=jobs, csv_path=csv_path)
    errors = [outcome.submission.id for outcome in outcomes if outcome.status == GRADER_ERROR]
    skipped = sum(outcome.skipped for outcome in outcomes)
    print(f"{len(outcomes)} submissions: {skipped} graded by an earlier run, {len(errors)} grader errors")
    print(f"results in {out}{os.sep}<id>{os.sep}, scores in {csv_path}, histogram in {histogram_path(csv_path)}")
    if errors:
        print(f"could not grade {', '.join(errors)}; run again to retry them", file=sys.stderr)
    return 1 if errors else 0


def histogram_path(csv_path: Path) -> Path:
    return csv_path.with_name(f"{csv_path.stem}-histogram.png")


def _number(value: float) -> str:
    return format(round(value, 6), "g")


def write_csv(outcomes: Sequence[Outcome], path: Path) -> None:
    """One row per submission: id, status, total, max, one column per component, the reason of an error."""
    graded = [o.results for o in outcomes if o.results is not None]
    components = sorted({component for results in graded for component in component_scores(results)}, key=_sort_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "status", "total", "max", *components, "reason"])
        for outcome in outcomes:
            row = [outcome.submission.id, outcome.status]
            if outcome.results is None:
                row += ["", "", *([""] * len(components))]
            else:
                scores = component_scores(outcome.results)
                maximum = sum(float(test["max_score"]) for test in outcome.results["tests"])
                row += [_number(total_score(outcome.results)), _number(maximum)]
                row += [_number(scores.get(component, 0.0)) for component in components]
            writer.writerow([*row, outcome.reason])


def write_histogram(totals: Iterable[float], path: Path, *, top: float | None = None) -> None:
    """A PNG bar chart of the totals in 20 bins from 0 to `top` (the full marks; default: the highest total,
    at least 1), so a TA sees at a glance where the class stands.

    Drawn with Pillow, which the grader already needs, rather than matplotlib, which it does not.
    """
    values = list(totals)
    top = top or max([1.0, *values])
    counts = [0] * _BINS
    for value in values:
        counts[min(_BINS - 1, max(0, int(value / top * _BINS)))] += 1
    width, height, left, right, upper, lower = 900, 500, 70, 30, 50, 60
    plot_w, plot_h = width - left - right, height - upper - lower
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 15), f"Totals of {len(values)} graded submissions", fill="black", font=font)
    peak = max(counts + [1])
    for index, count in enumerate(counts):
        x0 = left + index * plot_w / _BINS
        x1 = left + (index + 1) * plot_w / _BINS
        if count:
            y0 = upper + plot_h * (1 - count / peak)
            draw.rectangle([x0 + 2, y0, x1 - 2, upper + plot_h], fill=(66, 114, 196), outline=(30, 60, 120))
            draw.text(((x0 + x1) / 2, y0 - 4), str(count), fill="black", font=font, anchor="mb")
    draw.line([left, upper, left, upper + plot_h, left + plot_w, upper + plot_h], fill="black", width=2)
    for tick in range(0, _BINS + 1, 4):
        x = left + tick * plot_w / _BINS
        draw.line([x, upper + plot_h, x, upper + plot_h + 5], fill="black")
        draw.text((x, upper + plot_h + 8), _number(top * tick / _BINS), fill="black", font=font, anchor="mt")
    draw.text((left + plot_w / 2, height - 20), "total score", fill="black", font=font, anchor="mm")
    draw.text((left - 10, upper), str(peak), fill="black", font=font, anchor="rm")
    draw.text((left - 10, upper + plot_h), "0", fill="black", font=font, anchor="rm")
    draw.text((15, upper + plot_h / 2), "count", fill="black", font=font, anchor="lm")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
