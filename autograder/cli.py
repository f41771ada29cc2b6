"""Command line: one sub-command per job; each handler lives next to the code it drives.

Exit status of `grade`, `check` and `batch`, for scripts: 0 when the submission was graded (a notebook that
cannot be read is graded too: every test fails with the reason, and the results file says so); 1 when the
grader itself failed (`grade`, `check`: a fallback results file says so; `batch`: some submission's grader
failed); 2 on a usage error (a path that does not exist or is not a notebook or .py file, an unknown
profile, `--only` selecting no test), with one line on stderr and no results file written.

Over 400 lines on purpose: the whole command line (every sub-command's options and its few-line handler) reads
in one place, and each handler imports what it drives only when run, so `check` starts without the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.assignment.source import REPO_ROOT
from autograder.profiles.profile import DEFAULT_PROFILE, PUBLIC_PROFILE
from autograder.worker.isolation import UNSAFE_SAME_USER_FLAG

if TYPE_CHECKING:
    from autograder.worker.client import Worker

STUDENT_COMMANDS = ("check",)  # all that the student package's `python -m autograder` offers
STUDENT_DESCRIPTION = (
    "The public checks of Problem Set 7. `check` exits 0 when your notebook was checked (whatever it scored), 1 "
    "when the checker itself failed, 2 on a usage error (a path that does not exist or is not a notebook or .py "
    "file)."
)
UNSAFE_SAME_USER_HELP = (
    "when not root and without namespaces: run student code as your own user anyway (it can then read the hidden "
    "tests and rewrite results); without it, `grade --suite all` and `batch` refuse"
)


def _template(args: argparse.Namespace) -> int:
    from autograder.assignment.build import find_drift, write_all

    if args.check:
        drifted = find_drift(args.root)
        for path in drifted:
            print(
                f"{path}: differs from what `python -m autograder template` builds; rebuild and commit it.",
                file=sys.stderr,
            )
        return 1 if drifted else 0
    for path in write_all(args.root):
        print(f"wrote {path}")
    return 0


USAGE_ERROR = 2
GRADER_ERROR = 1


def _usage_error(command: str, message: str) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return USAGE_ERROR


def _prepare(args: argparse.Namespace) -> int:
    from autograder.profiles.prepare import PrepareError, prepare
    from autograder.profiles.profile import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as error:
        return _usage_error("prepare", str(error))
    try:
        prepare(
            profile,
            stl10_source=args.stl10,
            flickr8k_source=args.flickr8k,
            text_model=args.text_model,
            image_weights=args.image_weights,
        )
    except PrepareError as error:
        print(f"prepare failed: {error}", file=sys.stderr)
        return 2
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from autograder.profiles.calibrate import CalibrationError, calibrate
    from autograder.profiles.profile import ProfileError, load_profile

    try:
        loaded = load_profile(args.profile)
    except ProfileError as error:
        return _usage_error("calibrate", str(error))
    try:
        profile = calibrate(loaded, args.runs, margin=args.margin, jobs=args.jobs)
    except CalibrationError as error:
        print(f"calibrate: nothing written: {error}", file=sys.stderr)
        return 1
    print(f"thresholds written to {profile.path}: {profile.raw['thresholds']}")
    return 0


def _run_grade(
    submission: Path,
    results: Path,
    profile: str,
    suite: str,
    only: str | None,
    *,
    keep: bool = True,
    html: Path | None = None,
    as_json: bool = False,
    spare: Worker | None = None,
) -> int:
    """Prepare the profile if needed, grade, print the table, the reason of each lost point and a summary
    (or, with `as_json`, only the results document on stdout). The exit status is in the module docstring."""
    from autograder.grading import grade
    from autograder.grading.grade import TOTAL_POINTS, NothingSelected
    from autograder.ingest.reader import SUBMISSION_SUFFIXES
    from autograder.profiles.layout import NotPreparedError, prepared_manifest
    from autograder.profiles.profile import ProfileError, load_profile
    from autograder.results import (
        fallback_results,
        format_reasons,
        format_summary,
        format_table,
        without_headline,
        write_results,
    )

    command = "grade" if keep else "check"
    problem = _unreadable(submission, "file or folder")
    if problem is not None:
        return _usage_error(command, problem)
    if submission.is_file() and submission.suffix.lower() not in SUBMISSION_SUFFIXES:
        return _usage_error(command, f"{submission}: not a notebook (.ipynb) or Python file (.py)")
    try:
        loaded = load_profile(profile)
    except ProfileError as error:
        return _usage_error(command, str(error))
    try:
        prepared_manifest(loaded)  # current: `prepare`, which imports torch, is not needed
    except NotPreparedError:
        from autograder.profiles.prepare import PrepareError, prepare

        try:
            prepare(loaded)
        except PrepareError as error:
            print(f"cannot grade: profile {profile!r} could not be prepared: {error}", file=sys.stderr)
            write_results(fallback_results(f"The autograder's profile {profile!r} is not available: {error}"), results)
            return GRADER_ERROR
    notes = sys.stderr if as_json else sys.stdout
    try:
        with contextlib.redirect_stdout(notes):
            finished = grade(submission, results, profile=profile, suite=suite, only=only, html=html, spare=spare)
    except NothingSelected as error:
        return _usage_error(command, str(error))
    if as_json:
        print(json.dumps(finished.to_dict(), indent=2, ensure_ascii=False))
    else:
        sections = [format_table(finished), format_reasons(finished), without_headline(finished.output)]
        sections.append(format_summary(finished, TOTAL_POINTS if only is None else None))
        print("\n\n".join(section for section in sections if section.strip()))
    if keep:
        print(f"results written to {results}", file=notes)
    if html is not None:
        print(f"report written to {html}", file=notes)
    return GRADER_ERROR if finished.grader_error is not None else 0


def _refused(command: str, unsafe_same_user: bool, prefix: str = "") -> bool:
    """Print why `command` may not run as the grader's own user, unless the user accepted that risk."""
    from autograder.worker.isolation import same_user_refusal

    reason = None if unsafe_same_user else same_user_refusal(command)
    if reason is not None:
        print(prefix + reason, file=sys.stderr)
    return reason is not None


def _unreadable(path: Path, what: str) -> str | None:
    """Why `path` cannot be used as `what` ("file or folder", "folder"), or None."""
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as error:  # e.g. a folder above it that this user may not enter
        return f"{path}: {error.strerror}"
    if not exists:
        return f"{path}: no such {what}"
    if what == "folder" and not is_dir:
        return f"{path}: not a folder"
    return None


def _grade(args: argparse.Namespace) -> int:
    if args.suite == "all" and _refused("grade --suite all", args.unsafe_same_user):
        return USAGE_ERROR
    return _run_grade(
        args.submission, args.results, args.profile, args.suite, args.only, html=args.html, as_json=args.json
    )


def _check(args: argparse.Namespace) -> int:
    import tempfile

    def once(spare: Worker | None = None) -> int:
        with tempfile.TemporaryDirectory(prefix="ps7-check-") as folder:
            return _run_grade(
                args.submission,
                Path(folder) / "results.json",
                args.profile,
                "public",
                args.only,
                keep=False,
                as_json=args.json,
                spare=spare,
            )

    if not args.watch:
        return once()
    if args.json:
        return _usage_error("check", "--watch prints for people and --json for tools: give one of them")
    problem = _unreadable(args.submission, "file or folder")
    if problem is None and not args.submission.is_file():
        problem = f"{args.submission}: --watch watches one notebook file, not a folder"
    if problem is not None:
        return _usage_error("check", problem)
    from autograder.grading.grade import begin_worker
    from autograder.grading.watch import watch

    return watch(args.submission, once, lambda: begin_worker(None, args.profile))


def _zip(args: argparse.Namespace) -> int:
    from autograder.delivery.gradescope_zip import ZipError, build_zip, default_zip_path

    out = args.out or default_zip_path(args.profile)
    try:
        names = build_zip(out, args.profile, flickr8k=args.flickr8k, stl10=args.stl10)
    except ZipError as error:
        print(f"zip failed: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(names)} files, profile {args.profile}): upload it as the autograder on Gradescope")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from autograder.delivery.batch import BatchError, Options, batch_command
    from autograder.profiles.profile import ProfileError, load_profile

    if _refused("batch", args.unsafe_same_user, prefix="batch failed: "):
        return USAGE_ERROR
    problem = _unreadable(args.folder, "folder")
    if problem is not None:
        return _usage_error("batch", problem)
    try:
        load_profile(args.profile)
    except ProfileError as error:
        return _usage_error("batch", str(error))
    from autograder.delivery.devices import parse_devices

    try:
        devices = None if args.gpus is None else parse_devices(args.gpus)
    except ValueError as error:
        return _usage_error("batch", f"--gpus: {error}")
    if args.scheduler is not None and args.executor != "dask":
        return _usage_error("batch", f"--scheduler is for --executor dask, not {args.executor}")
    options = Options(args.profile, args.suite, args.timeout, force=args.force, unsafe_same_user=args.unsafe_same_user)
    try:
        return batch_command(
            args.folder,
            options,
            out=args.out,
            csv_path=args.csv,
            jobs=args.jobs,
            executor=args.executor,
            scheduler=args.scheduler,
            devices=devices,
        )
    except BatchError as error:
        print(f"batch failed: {error}", file=sys.stderr)
        return 2


def _student_package(args: argparse.Namespace) -> int:
    from autograder.delivery.student_package import StudentPackageError, build_student_package

    try:
        package = build_student_package(args.out, url=args.url)
    except StudentPackageError as error:
        print(f"student-package failed: {error}", file=sys.stderr)
        return 2
    print(f"wrote {package.notebook} and {package.wheel} ({len(package.files)} files, public checks only)")
    return 0


class _Offered:
    """The sub-commands of `build_parser`, less those not offered: they are built, then dropped."""

    def __init__(self, commands: argparse._SubParsersAction, offered: Collection[str]) -> None:
        self.commands, self.offered = commands, offered

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        if name in self.offered:
            return self.commands.add_parser(name, **kwargs)
        return argparse.ArgumentParser(prog=name)


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The command line; `only` keeps those sub-commands (the student package's `STUDENT_COMMANDS`)."""
    description = __doc__ if only is None else STUDENT_DESCRIPTION
    parser = argparse.ArgumentParser(prog="python -m autograder", description=description)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is not None:
        commands = _Offered(commands, only)

    template = commands.add_parser(
        "template", help="build the reference notebook and the student template from the one source"
    )
    template.add_argument("--check", action="store_true", help="exit 1 if a committed notebook is out of date")
    template.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    template.set_defaults(handler=_template)

    prepare = commands.add_parser("prepare", help="make the data and backbones of a profile, once, offline afterwards")
    prepare.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name or JSON file ({DEFAULT_PROFILE})")
    prepare.add_argument("--stl10", metavar="PATH", help="folder containing stl10_binary/ (real profiles)")
    prepare.add_argument("--flickr8k", metavar="PATH_OR_URL", help="Flickr8k folder or zip URL (real profiles)")
    prepare.add_argument(
        "--text-model", metavar="PATH", help="local DistilBERT folder (save_pretrained or a hub snapshot); offline"
    )
    prepare.add_argument(
        "--image-weights", metavar="PATH", help="local ResNet50 weights (torchvision's .pth, .safetensors, its folder)"
    )
    prepare.set_defaults(handler=_prepare)

    calibrate = commands.add_parser("calibrate", help="grade the reference with N seeds and set the thresholds")
    calibrate.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name or JSON file ({DEFAULT_PROFILE})")
    calibrate.add_argument("--runs", type=int, default=10, help="number of seeds (10)")
    calibrate.add_argument("--margin", type=float, default=0.05, help="thresholds = worst run minus this (0.05)")
    calibrate.add_argument("--jobs", type=int, default=1, help="seeds run at once, one thread each (1)")
    calibrate.set_defaults(handler=_calibrate)

    grade = commands.add_parser("grade", help="grade one submission (a file, or a folder searched for one)")
    grade.add_argument("submission", type=Path, help="the .ipynb or .py file, or a folder holding it")
    grade.add_argument("--results", type=Path, required=True, help="where to write Gradescope's results.json")
    grade.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name or JSON file ({DEFAULT_PROFILE})")
    grade.add_argument("--suite", choices=("public", "all"), default="all", help="public tests only, or all (all)")
    grade.add_argument("--only", metavar="COMPONENT", help="only the tests of one component, e.g. 7.1.1")
    grade.add_argument("--html", type=Path, metavar="FILE", help="also write a report page with the run's figures")
    grade.add_argument(UNSAFE_SAME_USER_FLAG, action="store_true", help=UNSAFE_SAME_USER_HELP)
    grade.add_argument("--json", action="store_true", help="print only the results document (JSON) on stdout")
    grade.set_defaults(handler=_grade)

    check = commands.add_parser("check", help="run the public checks on your notebook (seconds, no data set)")
    check.add_argument("submission", type=Path, help="your .ipynb or .py file")
    check.add_argument("--profile", default=PUBLIC_PROFILE, help=f"profile name or JSON file ({PUBLIC_PROFILE})")
    check.add_argument("--only", metavar="COMPONENT", help="only the checks of one component, e.g. 7.1.1")
    check.add_argument("--json", action="store_true", help="print only the results document (JSON) on stdout")
    check.add_argument(
        "--watch", action="store_true", help="check again each time the notebook is saved, in seconds (Ctrl-C stops)"
    )
    check.set_defaults(handler=_check)

    zip_ = commands.add_parser("zip", help="build the Gradescope upload (setup.sh and run_autograder at its root)")
    zip_.add_argument("--out", type=Path, help="the zip to write (build/ps7-gradescope-PROFILE.zip)")
    zip_.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile Gradescope grades with ({DEFAULT_PROFILE})")
    zip_.add_argument("--flickr8k", metavar="PATH_OR_URL", help="Flickr8k for setup.sh's prepare (real profiles)")
    zip_.add_argument("--stl10", metavar="PATH_OR_URL", help="STL-10 folder or .tar.gz URL (real profiles)")
    zip_.set_defaults(handler=_zip)

    batch = commands.add_parser("batch", help="grade a folder of submissions in parallel: results, CSV, histogram")
    batch.add_argument("folder", type=Path, help="one sub-folder or .ipynb/.py file per student (a Gradescope export)")
    batch.add_argument("--out", type=Path, help="where results go, one folder per submission (FOLDER-graded)")
    batch.add_argument("--csv", type=Path, help="the CSV of scores (OUT/scores.csv); the histogram goes next to it")
    batch.add_argument("--jobs", type=int, default=1, help="submissions graded at once; dask, slurm: workers (1)")
    batch.add_argument(
        "--executor",
        choices=("local", "dask", "slurm"),
        default="local",
        help="local: processes on this machine; dask: a Dask LocalCluster of worker processes, or the cluster at "
        "--scheduler; slurm: Slurm jobs started by dask-jobqueue (its jobqueue.slurm settings) (local)",
    )
    batch.add_argument("--scheduler", help="with --executor dask: the address of a running Dask scheduler")
    batch.add_argument(
        "--gpus",
        help="GPUs to hand out, one grade per GPU at a time, e.g. 0,1 or none (default: those this machine shows)",
    )
    batch.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name or JSON file ({DEFAULT_PROFILE})")
    batch.add_argument("--suite", choices=("public", "all"), default="all", help="public tests only, or all (all)")
    batch.add_argument("--timeout", type=float, default=1800, help="seconds one submission may take (1800)")
    batch.add_argument("--force", action="store_true", help="regrade submissions graded by an earlier run")
    batch.add_argument(UNSAFE_SAME_USER_FLAG, action="store_true", help=UNSAFE_SAME_USER_HELP)
    batch.set_defaults(handler=_batch)

    student = commands.add_parser(
        "student-package", help="write what students get: the template notebook and a wheel of the public checks"
    )
    student.add_argument("--out", type=Path, required=True, help="the folder to write them into")
    student.add_argument(
        "--url", help="where students will download the wheel from: the template's last cell installs it from there"
    )
    student.set_defaults(handler=_student_package)
    return parser


def main(argv: list[str] | None = None, only: Collection[str] | None = None) -> int:
    args = build_parser(only).parse_args(argv)
    return args.handler(args)
