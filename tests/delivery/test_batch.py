"""`python -m autograder batch` on a Gradescope-export-shaped folder: real `grade` subprocesses, a CSV whose
component columns add up to the totals, a PNG histogram, a grader crash reported and retried, resumability."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from autograder.assignment.build import REFERENCE_NOTEBOOK, REPO_ROOT, TEMPLATE_NOTEBOOK
from autograder.delivery.batch import (
    GRADER_ERROR,
    OK,
    BatchError,
    component_of,
    find_submissions,
    read_results,
    write_histogram,
)
from autograder.worker.confinement import unavailable_reason
from tests.results.test_schema import load_valid

BAR = (66, 114, 196)  # the histogram's bar colour


def test_find_submissions_reads_the_export_layout(tmp_path):
    export = tmp_path / "export" / "assignment_7_export"
    (export / "submission_11" / "nested").mkdir(parents=True)
    (export / "submission_11" / "nested" / "ps7.ipynb").write_text("{}")
    (export / "submission_12").mkdir()
    (export / "carol.py").write_text("x = 1\n")
    (export / "submission_metadata.yml").write_text(":submission_11:\n")
    (export / "notes.txt").write_text("not a submission")
    (export / ".DS_Store").write_text("")
    found = find_submissions(tmp_path / "export")  # the export's single top folder is entered
    assert [(s.id, s.path.name) for s in found] == [
        ("carol", "carol.py"),
        ("submission_11", "submission_11"),
        ("submission_12", "submission_12"),
    ]
    assert [s.id for s in find_submissions(export, exclude=export / "submission_12")] == ["carol", "submission_11"]


def test_find_submissions_refuses_clashing_ids_and_empty_folders(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice.ipynb").write_text("{}")
    with pytest.raises(BatchError, match="share an id"):
        find_submissions(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="holds no submission"):
        find_submissions(tmp_path / "empty")


def test_components_come_from_numbers_or_names():
    assert component_of({"number": "7.2.2.3", "name": "x"}) == "7.2.2"
    assert component_of({"name": "7.1.5 report: Method I accuracy"}) == "7.1.5"
    assert component_of({"name": "pipeline, for information"}) == "other"


def test_read_results_rejects_what_cannot_be_scored(tmp_path):
    path = tmp_path / "results.json"
    for text in ("{", '{"tests": 3}', '{"tests": [{"score": "1", "max_score": 1}]}', '{"score": NaN, "tests": []}'):
        path.write_text(text)
        assert read_results(path) is None, text
    path.write_text('{"score": 1, "tests": [{"score": 1, "max_score": 2}]}')
    assert read_results(path) == {"score": 1, "tests": [{"score": 1, "max_score": 2}]}


def test_histogram_is_a_png_with_a_bar_per_occupied_bin(tmp_path):
    write_histogram([0.0, 0.0, 10.0], tmp_path / "h.png", top=10.0)
    image = Image.open(tmp_path / "h.png")
    assert image.format == "PNG"
    row = [image.getpixel((x, image.height - 70)) for x in range(image.width)]  # just above the x axis
    runs = sum(1 for x in range(1, len(row)) if row[x] == BAR and row[x - 1] != BAR)
    assert runs == 2


def batch(folder: Path, out: Path, cache: Path, python: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PS7_CACHE": str(cache), "PS7_PYTHON": str(python)}
    argv = [sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out)]
    argv += ["--jobs", "2", "--suite", "public"]
    return subprocess.run(argv, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600)


def read_csv(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    return list(rows[0]), {row["id"]: row for row in rows}


@pytest.mark.slow
def test_batch_grades_a_folder_reports_a_crash_and_resumes(synthetic_cache, tmp_path):
    export = tmp_path / "submissions" / "assignment_7_export"
    for name in ("submission_1/work", "submission_3", "submission_4"):
        (export / name).mkdir(parents=True)
    (export / "submission_metadata.yml").write_text(":submission_1:\n  :submitters: []\n")
    shutil.copy(REPO_ROOT / REFERENCE_NOTEBOOK, export / "submission_1" / "work" / "ps7_solution.ipynb")
    shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, export / "student_b.ipynb")
    (export / "submission_3" / "ps7.ipynb").write_bytes(b"\x89\x00\xff garbage \x00" * 100)
    shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, export / "submission_4" / "ps7.ipynb")
    # The grader crashes on submission_4 (as a grader bug would); every other call is the real one.
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        'case "$*" in *submission_4*) echo "RuntimeError: simulated grader crash" >&2; exit 3;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    out = tmp_path / "graded"

    done = batch(tmp_path / "submissions", out, synthetic_cache, python)
    assert done.returncode == 1, done.stderr  # 1: a submission could not be graded
    assert "could not grade submission_4" in done.stderr

    columns, rows = read_csv(out / "scores.csv")
    components = columns[4:-1]
    assert columns[:4] == ["id", "status", "total", "max"] and columns[-1] == "reason" and components
    assert sorted(rows) == ["student_b", "submission_1", "submission_3", "submission_4"]
    crash = rows["submission_4"]
    assert crash["status"] == GRADER_ERROR and crash["total"] == "" and "status 3" in crash["reason"]
    assert "simulated grader crash" in crash["reason"]
    for name in ("student_b", "submission_1", "submission_3"):
        row = rows[name]
        assert row["status"] == OK and row["reason"] == ""
        assert sum(float(row[column]) for column in components) == pytest.approx(float(row["total"]))
        document = load_valid(out / name / "results.json")
        assert float(row["total"]) == pytest.approx(document["score"])
        assert float(row["max"]) == pytest.approx(sum(test["max_score"] for test in document["tests"]))
    full = float(rows["submission_1"]["max"])
    assert full > 0 and float(rows["submission_1"]["total"]) == pytest.approx(full)
    assert float(rows["student_b"]["total"]) == 0 and float(rows["submission_3"]["total"]) == 0

    histogram = Image.open(out / "scores-histogram.png")
    assert histogram.format == "PNG" and BAR in {color for _, color in histogram.getcolors(1 << 20)}

    # Second run: the three graded submissions are skipped, the crash is retried, a changed one regraded.
    stamps = {name: (out / name / "results.json").stat().st_mtime_ns for name in ("student_b", "submission_1")}
    garbage = out / "submission_3" / "results.json"
    (export / "submission_3" / "ps7.ipynb").write_bytes(b"different garbage")
    before = garbage.stat().st_mtime_ns
    again = batch(tmp_path / "submissions", out, synthetic_cache, python)
    assert again.returncode == 1 and "2 graded by an earlier run, 1 grader errors" in again.stdout
    assert stamps == {name: (out / name / "results.json").stat().st_mtime_ns for name in stamps}
    assert garbage.stat().st_mtime_ns != before
    assert json.loads((out / "submission_4" / "batch.json").read_text())["status"] == GRADER_ERROR
    assert read_csv(out / "scores.csv")[1]["submission_1"]["total"] == rows["submission_1"]["total"]


@pytest.mark.slow
def test_batch_takes_scores_from_the_grade_process_not_from_files_student_code_could_rewrite(synthetic_cache, tmp_path):
    """A student's daemon once rewrote results.json after grading: 10/10 on disk, 0/10 printed. Here the grade
    of an untouched template is followed, before the grade process ends, by a forged full score in its
    results.json (as code running as the grading user could write it): the CSV keeps the reported 0, the file
    is put back to the report, and a later run regrades a file changed behind the batch's back."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(REPO_ROOT / TEMPLATE_NOTEBOOK, folder / "forger.ipynb")
    out = tmp_path / "graded"
    forged = '{"score": 10.0, "output": "FORGED", "tests": [{"score": 10.0, "max_score": 10.0, "name": "x"}]}'
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'{sys.executable} "$@"; status=$?\n'
        f"case \"$*\" in *' grade '*) printf '%s' '{forged}' > {out / 'forger' / 'results.json'};; esac\n"
        "exit $status\n"
    )
    python.chmod(0o755)

    done = batch(folder, out, synthetic_cache, python)
    assert done.returncode == 0, done.stderr
    row = read_csv(out / "scores.csv")[1]["forger"]
    assert row["status"] == OK and float(row["total"]) == 0, row
    document = load_valid(out / "forger" / "results.json")
    assert "FORGED" not in json.dumps(document) and document["tests"], "the reported results replace the forgery"

    (out / "forger" / "results.json").write_text(forged)
    again = batch(folder, out, synthetic_cache, python)
    assert "0 graded by an earlier run" in again.stdout, "a results file changed after the batch is not trusted"
    assert float(read_csv(out / "scores.csv")[1]["forger"]["total"]) == 0


NOBODY = "65534"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_without_a_separate_user_full_grading_and_batch_refuse_unless_told(tmp_path):
    """Run as an ordinary user (nobody) where bubblewrap is not to be found, student code would run as that same
    user: `grade --suite all` and `batch` refuse, naming the flag that accepts the risk; `batch` passes that flag
    on to its grades."""
    as_nobody = [shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable]
    as_nobody += ["-m"]
    env = {**os.environ, "HOME": "/tmp", "PYTHONPATH": str(REPO_ROOT), "PATH": "/nonexistent"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_nobody, "autograder", *args], cwd="/", env=env, capture_output=True, text=True)

    grade = run("grade", str(tmp_path / "ps7.ipynb"), "--results", str(tmp_path / "results.json"), "--suite", "all")
    assert grade.returncode == 2 and "refusing to run `grade --suite all`" in grade.stderr, grade.stderr
    assert "--unsafe-same-user" in grade.stderr and not (tmp_path / "results.json").exists()
    refused = run("batch", str(tmp_path), "--out", str(tmp_path / "out"))
    assert refused.returncode == 2 and "batch failed: refusing to run `batch`" in refused.stderr, refused.stderr
    assert "--unsafe-same-user" in run("batch", "--help").stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.skipif(unavailable_reason(int(NOBODY), int(NOBODY)) is not None, reason="no namespaces for nobody")
def test_an_ordinary_user_with_namespaces_is_not_refused():
    """Namespaces keep the worker apart from a TA's own account, so an ordinary user may grade everything: the
    decision taken as that user (this checkout's suites are root's, so a whole grade as nobody cannot run here)."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c"]
    decide = "from autograder.worker.isolation import same_user_refusal; print(same_user_refusal('batch'))"
    env = {**os.environ, "HOME": "/tmp", "PYTHONPATH": str(REPO_ROOT)}
    decided = subprocess.run([*as_nobody, decide], cwd="/", env=env, capture_output=True, text=True)
    assert decided.returncode == 0 and decided.stdout.strip() == "None", decided.stderr
