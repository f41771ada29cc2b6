"""`python -m autograder batch` on a Gradescope-export-shaped folder: real `grade` subprocesses, a CSV joined to
the export's submission_metadata.yml whose component columns add up to the totals, a PNG histogram, a grader crash
reported and retried, resumability."""

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

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.delivery.batch import GRADER_ERROR, OK, BatchError, BatchSubmission, Outcome, find_submissions
from autograder.delivery.scores import (
    BAR_COLOR,
    Submitter,
    component_of,
    read_roster,
    usable_results,
    write_csv,
    write_histogram,
)
from autograder.results import Results, TestResult
from autograder.worker.confinement import unavailable_reason
from tests.results.test_schema import load_valid

BAR = tuple(int(BAR_COLOR[index : index + 2], 16) for index in (1, 3, 5))  # the histogram's bars, as RGB

# Gradescope's "Export Submissions" metadata as its Ruby side writes it: symbols as keys (":submitters:"), a
# group submission, a BigDecimal score under a Ruby tag, timestamps, the autograder's earlier results.
EXPORT_METADATA = """\
submission_1:
  :submitters:
  - :name: Ada Lovelace
    :sid: '1815'
    :email: ada@example.edu
  :created_at: 2023-11-30 23:58:01.123456000 -05:00
  :score: !ruby/object:BigDecimal 18:0.1e2
  :status: processed
  :results:
    score: 10.0
    tests:
    - name: 7.1.1 Encoder
      score: 1.0
  :history: []
submission_3:
  :submitters:
  - :name: Alan Turing
    :sid: '1912'
    :email: alan@example.edu
  - :name: "O'Neil, Grace"
    :sid: '1906'
    :email: grace@example.edu
  :created_at: 2023-12-01 00:10:00.000000000 -05:00
  :score: 0.0
  :history:
  - :created_at: 2023-11-29 10:00:00.000000000 -05:00
    :score: 0.0
"""


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
    assert component_of(TestResult("x", "7.2.2.3", 0.0, 1.0, "failed")) == "7.2.2"
    assert component_of(TestResult("7.1.5 report: Method I accuracy", None, 0.0, 1.0, "failed")) == "7.1.5"
    assert component_of(TestResult("pipeline, for information", None, 0.0, 1.0, "failed")) == "other"


def test_usable_results_rejects_what_cannot_be_scored():
    unusable = (
        "{",
        "[]",
        "{}",
        '{"tests": 3}',
        '{"tests": [1]}',
        '{"tests": [{"score": "1", "max_score": 1}]}',
        '{"tests": [{"score": true, "max_score": 1}]}',
        '{"tests": [{"score": 1}]}',
        '{"tests": [{"max_score": 1}]}',
        '{"tests": [{"score": 1, "max_score": Infinity}]}',
        '{"score": NaN, "tests": []}',
    )
    for text in unusable:
        assert usable_results(text.encode()) is None, text
    results = usable_results(b'{"score": 1, "tests": [{"score": 1, "max_score": 2}]}')
    assert results == Results(tests=[TestResult("", None, 1.0, 2.0, "failed")], score=1.0)
    assert (results.total_score, results.max_score) == (1.0, 2.0)


def test_read_roster_reads_the_names_emails_and_sids_of_gradescopes_export(tmp_path):
    export = tmp_path / "assignment_7_export"
    export.mkdir()
    (export / "submission_metadata.yml").write_text(EXPORT_METADATA)
    roster = read_roster(tmp_path)  # the export's single top folder is entered
    assert roster == {
        "submission_1": (Submitter("Ada Lovelace", "ada@example.edu", "1815"),),
        "submission_3": (
            Submitter("Alan Turing", "alan@example.edu", "1912"),
            Submitter("O'Neil, Grace", "grace@example.edu", "1906"),
        ),
    }
    (export / "submission_metadata.yml").write_text("submission_1: [unclosed\n")
    assert read_roster(export) == {}, "unreadable metadata costs the names, not the batch"
    assert read_roster(tmp_path / "assignment_7_export" / "..") == {}


def _results(*tests: tuple[str, float, float, dict | None]) -> Results:
    entries = []
    for number, score, max_score, accuracies in tests:
        entry = {"number": number, "name": f"{number[:5]} test", "score": score, "max_score": max_score}
        if accuracies:
            entry["extra_data"] = {"accuracies": accuracies}
        entries.append(entry)
    return Results.from_dict({"score": sum(test["score"] for test in entries), "tests": entries})


def test_csv_rows_join_the_roster_and_carry_the_measured_accuracies(tmp_path):
    roster = {
        "submission_1": (Submitter("Ada Lovelace", "ada@x.edu", "1815"),),
        "submission_3": (Submitter("Alan Turing", "a@x.edu", "1"), Submitter("Grace Hopper", "g@x.edu", "2")),
    }
    first = _results(("7.1.3.3", 0.5, 0.5, {"Method I": 0.4123}), ("7.2.2.6", 0.0, 0.5, {"CLIP probe": 0.61}))
    third = _results(("7.1.3.3", 0.0, 0.5, {"Method I": 0.1}), ("7.2.1.1", 1.0, 1.0, None))
    third.tests[0].output = "did not finish: the grade's time limit of 15 min was reached"
    outcomes = [
        Outcome(BatchSubmission("submission_1", tmp_path), OK, results=first),
        Outcome(BatchSubmission("submission_3", tmp_path), OK, results=third),
        Outcome(BatchSubmission("late.ipynb", tmp_path), GRADER_ERROR, reason="the grader exited with status 3"),
    ]
    write_csv(outcomes, tmp_path / "scores.csv", roster)
    columns, rows = read_csv(tmp_path / "scores.csv")
    assert columns == [
        "id", "submission_id", "names", "emails", "sids", "status", "total", "max",
        "7.1.3", "7.2.1", "7.2.2", "accuracy: Method I", "accuracy: CLIP probe", "reason",
    ]  # fmt: skip
    ada, pair, late = rows["submission_1"], rows["submission_3"], rows["late.ipynb"]
    identity = [ada[key] for key in ("submission_id", "names", "emails", "sids")]
    assert identity == ["1", "Ada Lovelace", "ada@x.edu", "1815"]
    assert pair["names"] == "Alan Turing; Grace Hopper" and pair["emails"] == "a@x.edu; g@x.edu"
    assert (ada["accuracy: Method I"], ada["accuracy: CLIP probe"], ada["total"]) == ("0.4123", "0.61", "0.5")
    assert (pair["accuracy: Method I"], pair["accuracy: CLIP probe"], pair["total"]) == ("0.1", "", "1")
    assert ada["reason"] == "" and pair["reason"].startswith("1 test(s) did not finish: the grade reached its time")
    assert late["names"] == "" and late["total"] == "" and late["reason"] == "the grader exited with status 3"


def test_histogram_is_a_png_with_a_bar_per_occupied_bin(tmp_path):
    write_histogram([0.0, 0.0, 10.0, 7.5], tmp_path / "h.png", top=10.0)
    opened = Image.open(tmp_path / "h.png")
    assert opened.format == "PNG"
    image = opened.convert("RGB")
    assert image.width >= 900 and image.height >= 500, "large enough to read at a glance"
    bar_rows = [y for y in range(image.height) if any(image.getpixel((x, y)) == BAR for x in range(image.width))]
    base = bar_rows[-3]  # just above the x axis
    row = [image.getpixel((x, base)) for x in range(image.width)]
    starts = [x for x in range(1, len(row)) if row[x] == BAR and row[x - 1] != BAR]
    assert len(starts) == 3, "bars for the bins of 0, 7.5 and 10"
    heights = []
    for start in starts:
        column = start + 3
        heights.append(base - min(y for y in bar_rows if image.getpixel((column, y)) == BAR))
    assert heights[0] == pytest.approx(2 * heights[1], rel=0.05) and heights[1] == pytest.approx(heights[2], rel=0.05)


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
    (export / "submission_metadata.yml").write_text(EXPORT_METADATA)
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
    components = columns[8:-1]
    assert columns[:8] == ["id", "submission_id", "names", "emails", "sids", "status", "total", "max"]
    assert columns[-1] == "reason" and components and not any(column.startswith("accuracy") for column in components)
    assert sorted(rows) == ["student_b", "submission_1", "submission_3", "submission_4"]
    assert (rows["submission_1"]["names"], rows["submission_1"]["emails"]) == ("Ada Lovelace", "ada@example.edu")
    group = rows["submission_3"]
    assert group["names"] == "Alan Turing; O'Neil, Grace" and group["submission_id"] == "3"
    assert rows["student_b"]["names"] == "" and rows["submission_4"]["sids"] == ""
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
    assert histogram.format == "PNG" and BAR in {color for _, color in histogram.convert("RGB").getcolors(1 << 20)}

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
