"""The pytest plugin, exercised the way the grader uses it: pytest in a subprocess on small suites."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autograder.results.gradescope import from_markdown
from autograder.results.plugin import NOT_RUN_OUTPUT, Credit
from tests.results.test_schema import load_valid

REPO = Path(__file__).resolve().parents[2]


def readable(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its Markdown outputs back as the plain text the tests wrote (`output_format` "md")."""
    assert document["output_format"] == document["test_output_format"] == "md"
    tests = [{**test, "output": from_markdown(test["output"])} for test in document["tests"]]
    return {**document, "output": from_markdown(document["output"]), "tests": tests}


@dataclass
class Run:
    returncode: int
    stdout: str
    results: Path


def run_suite(folder: Path, files: dict[str, str], *options: str) -> Run:
    """Write the files into `folder` and run pytest on it with the plugin, as run_autograder would."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")  # pins rootdir and keeps the project's settings out
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    results = folder / "out" / "results.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO)
    env["RESULTS_PATH"] = str(results)
    command = [sys.executable, "-m", "pytest", "-p", "autograder.results.plugin", "--results-json", str(results)]
    command += ["-p", "no:cacheprovider", "-q", *options]
    process = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    return Run(process.returncode, process.stdout + process.stderr, results)


MAIN_SUITE = '''
    import json
    import os
    import time

    import pytest


    @pytest.fixture
    def student_encoder():
        raise LookupError("your notebook does not define `Encoder` (check the cell that defines it)")


    @pytest.mark.points(1)
    @pytest.mark.tags("ae", "7.1")
    def test_encoder_shape():
        """7.1.1 Encoder: output shape is (N, 24, 4, 4)

        The rest of the docstring is not part of the name.
        """


    @pytest.mark.points(2)
    @pytest.mark.number("7.2.2.1")
    @pytest.mark.visibility("after_due_date")
    def test_clip_loss():
        """7.2.2 CLIPModel: loss matches the symmetric InfoNCE"""
        observed = 1.2
        assert observed == 3.47, f"expected loss 3.47, observed {observed}: logits multiplied by the temperature?"


    @pytest.mark.points(2)
    def test_partial_then_fail(credit):
        """partial credit, then a failure"""
        credit.award(0.25, "the shapes are right")
        assert False, "the values differ from the reference"


    @pytest.mark.points(2)
    def test_partial_then_pass(credit):
        """partial credit, then a pass"""
        credit.award(0.25, "the shapes are right")


    @pytest.mark.points(2)
    def test_explicit_fraction(credit):
        """explicit fraction"""
        credit.fraction = 0.75
        credit.note("accuracy 0.30, full credit from 0.40")
        credit.record_accuracy("Method I", 0.301234)


    @pytest.mark.points(1)
    def test_setup_error(student_encoder):
        """setup error"""


    @pytest.mark.points(1)
    def test_skipped():
        """skipped"""
        pytest.skip("needs the CLIP features, which could not be computed")


    @pytest.mark.points(1)
    def test_huge_message():
        """huge message"""
        assert False, "START\\x00\\x1b[31m" + "x" * 100000 + "END"


    @pytest.mark.points(1)
    @pytest.mark.timeout(0.5)
    def test_timeout():
        """timeout"""
        time.sleep(30)


    @pytest.mark.points(1)
    def test_internal_error():
        """internal error"""
        {}["missing"]


    @pytest.mark.points(0.5)
    @pytest.mark.parametrize("k", [1, 9])
    def test_param(k):
        """7.2.4 retrieve_images"""
        assert k < 5, f"k={k} is too large"


    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("cannot print me")


    @pytest.mark.points(1)
    def test_unprintable_error():
        """unprintable error"""
        raise Hostile()


    @pytest.mark.points(1)
    def test_reads_results_so_far():
        """results file during the run"""
        with open(os.environ["RESULTS_PATH"]) as handle:
            snapshot = json.load(handle)
        with open("snapshot.json", "w") as handle:
            json.dump(snapshot, handle)
'''

MAIN_CONFTEST = """
    from autograder.results.plugin import get_plugin


    def pytest_sessionstart(session):
        plugin = get_plugin(session.config)
        plugin.add_output("Profile: synthetic (thresholds calibrated on this budget).")
        plugin.extra_data["profile"] = "synthetic"
"""

# (Gradescope name, number, score, max_score, status) in collection order
EXPECTED = [
    ("7.1.1 Encoder: output shape is (N, 24, 4, 4)", "1", 1.0, 1.0, "passed"),
    ("7.2.2 CLIPModel: loss matches the symmetric InfoNCE", "7.2.2.1", 0.0, 2.0, "failed"),
    ("partial credit, then a failure", "3", 0.5, 2.0, "failed"),
    ("partial credit, then a pass", "4", 2.0, 2.0, "passed"),
    ("explicit fraction", "5", 1.5, 2.0, "failed"),
    ("setup error", "6", 0.0, 1.0, "failed"),
    ("skipped", "7", 0.0, 1.0, "failed"),
    ("huge message", "8", 0.0, 1.0, "failed"),
    ("timeout", "9", 0.0, 1.0, "failed"),
    ("internal error", "10", 0.0, 1.0, "failed"),
    ("7.2.4 retrieve_images [1]", "11", 0.5, 0.5, "passed"),
    ("7.2.4 retrieve_images [9]", "12", 0.0, 0.5, "failed"),
    ("unprintable error", "13", 0.0, 1.0, "failed"),
    ("results file during the run", "14", 1.0, 1.0, "passed"),
]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("main")
    run = run_suite(folder, {"test_suite.py": MAIN_SUITE, "conftest.py": MAIN_CONFTEST}, "--results-max-total", "10")
    return run, readable(load_valid(run.results)), folder


def outputs(document: dict[str, Any]) -> dict[str, str]:
    return {test["name"]: test["output"] for test in document["tests"]}


def test_scores_statuses_names_and_order(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    run, document, _ = main_run
    assert run.returncode == 1, run.stdout
    observed = [(t["name"], t["number"], t["score"], t["max_score"], t["status"]) for t in document["tests"]]
    assert observed == EXPECTED
    assert document["score"] == pytest.approx(sum(row[2] for row in EXPECTED))
    assert stat.S_IMODE(run.results.stat().st_mode) == 0o644


def test_visibility_and_tags_come_from_markers(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    _, document, _ = main_run
    visibility = {test["name"]: test["visibility"] for test in document["tests"]}
    assert visibility.pop("7.2.2 CLIPModel: loss matches the symmetric InfoNCE") == "after_due_date"
    assert set(visibility.values()) == {"visible"}
    tags = {test["name"]: test.get("tags") for test in document["tests"]}
    assert tags.pop("7.1.1 Encoder: output shape is (N, 24, 4, 4)") == ["ae", "7.1"]
    assert set(tags.values()) == {None}


def test_recorded_accuracies_go_to_their_tests_extra_data(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    _, document, _ = main_run
    extra = {test["name"]: test.get("extra_data") for test in document["tests"]}
    assert extra.pop("explicit fraction") == {"accuracies": {"Method I": 0.3012}}
    assert set(extra.values()) == {None}


def test_outputs_are_the_messages_students_can_act_on(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    _, document, _ = main_run
    text = outputs(document)
    assert text["7.1.1 Encoder: output shape is (N, 24, 4, 4)"] == ""
    assert text["7.2.2 CLIPModel: loss matches the symmetric InfoNCE"] == (
        "expected loss 3.47, observed 1.2: logits multiplied by the temperature?"
    )
    assert text["partial credit, then a failure"] == "the values differ from the reference\n\nthe shapes are right"
    assert text["partial credit, then a pass"] == "the shapes are right"
    assert text["explicit fraction"] == "accuracy 0.30, full credit from 0.40"
    assert text["setup error"] == (
        "This test could not run: LookupError: your notebook does not define `Encoder` (check the cell that defines it)"
    )
    assert text["skipped"] == "Skipped (0 points): needs the CLIP features, which could not be computed"
    assert text["timeout"] == "Time limit exceeded: this test was stopped after 0.5 s."
    assert text["internal error"] == "KeyError: 'missing'"
    assert text["7.2.4 retrieve_images [9]"] == "k=9 is too large"
    assert text["unprintable error"] == "Hostile: <unprintable Hostile>"
    for output in text.values():
        assert "Traceback" not in output and "test_suite.py" not in output and "\n>" not in output


def test_huge_output_is_cut_and_cleaned(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    _, document, _ = main_run
    output = outputs(document)["huge message"]
    assert len(output) <= 8192
    assert output.startswith("START\ufffd") and output.endswith("END")
    assert "characters left out" in output and "\x1b" not in output and "\x00" not in output


def test_results_are_written_after_every_test(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    """The last test read the file while it was running: everything before it final, itself pending."""
    _, _, folder = main_run
    snapshot = readable(json.loads((folder / "snapshot.json").read_text()))
    observed = [(t["name"], t["number"], t["score"], t["max_score"], t["status"]) for t in snapshot["tests"]]
    assert observed[:-1] == EXPECTED[:-1]
    assert snapshot["tests"][-1]["output"] == NOT_RUN_OUTPUT and snapshot["tests"][-1]["score"] == 0
    assert "Grading incomplete: 12 of 13 public tests finished" in snapshot["output"]  # one test is hidden


def test_top_level_output_summary_warning_and_session_messages(main_run: tuple[Run, dict[str, Any], Path]) -> None:
    run, document, _ = main_run
    """Students read the top-level output before the deadline: it counts the visible tests only; the staff's
    warning about the points goes to stdout (Gradescope shows it to the staff only)."""
    total = sum(row[3] for row in EXPECTED)
    public = [row for row in EXPECTED if row[1] != "7.2.2.1"]  # the hidden one
    score, max_score = sum(row[2] for row in public), sum(row[3] for row in public)
    passed = sum(row[4] == "passed" for row in public)
    lines = document["output"].splitlines()
    assert lines[0] == f"Public tests: {score:g} / {max_score:g} points ({passed} of {len(public)} tests passed)."
    assert lines[1] == "The other tests are graded and shown after the deadline."
    assert lines[2] == "Profile: synthetic (thresholds calibrated on this budget)."
    assert "add up to" not in document["output"] and f"/ {total:g} points" not in document["output"]
    assert f"the tests' points add up to {total:g}, expected 10." in run.stdout
    assert document["extra_data"] == {"profile": "synthetic"}
    assert document["stdout_visibility"] == "hidden"
    assert document["execution_time"] >= 0
    assert f"{document['score']:.2f} / {total:.2f}" in run.stdout  # the terminal table's total line


def test_a_test_without_points_stops_the_run_and_leaves_a_fallback(tmp_path: Path) -> None:
    suite = '''
        import pytest

        @pytest.mark.points(1)
        def test_weighted():
            """7.1.1 weighted"""

        def test_unweighted():
            """7.1.2 unweighted"""

        @pytest.mark.points(1)
        @pytest.mark.visibility("students")
        def test_bad_visibility():
            pass
    '''
    run = run_suite(tmp_path, {"test_suite.py": suite})
    assert run.returncode == 4, run.stdout
    assert "test_suite.py::test_unweighted has no @pytest.mark.points" in run.stdout
    assert "test_suite.py::test_bad_visibility: @pytest.mark.visibility must be one of" in run.stdout
    assert "test_weighted" not in run.stdout
    document = readable(load_valid(run.results))
    assert [test["name"] for test in document["tests"]] == [
        "7.1.1 weighted",
        "7.1.2 unweighted",
        "test_suite.py::test_bad_visibility",
    ]
    assert document["score"] == 0 and "not your fault" in document["output"]
    assert "test_unweighted has no @pytest.mark.points" in document["output"]


def test_results_survive_a_crash_midway(tmp_path: Path) -> None:
    suite = '''
        import os
        import pytest

        @pytest.mark.points(1)
        def test_first():
            """first"""

        @pytest.mark.points(2)
        def test_first_failure(credit):
            """second"""
            credit.award(0.5)
            assert 1 == 2, "wrong"

        @pytest.mark.points(3)
        def test_crash():
            """crash"""
            os._exit(1)

        @pytest.mark.points(4)
        def test_never_reached():
            """never reached"""
    '''
    run = run_suite(tmp_path, {"test_suite.py": suite})
    assert run.returncode == 1
    document = readable(load_valid(run.results))
    observed = [(t["name"], t["score"], t["max_score"], t["status"]) for t in document["tests"]]
    assert observed == [
        ("first", 1.0, 1.0, "passed"),
        ("second", 1.0, 2.0, "failed"),
        ("crash", 0.0, 3.0, "failed"),
        ("never reached", 0.0, 4.0, "failed"),
    ]
    assert [t["output"] for t in document["tests"][2:]] == [NOT_RUN_OUTPUT, NOT_RUN_OUTPUT]
    assert document["score"] == 2.0
    assert "Grading incomplete: 2 of 4 public tests finished" in document["output"]
    assert "not your fault" in document["output"]


def test_plugin_object_passed_to_pytest_main(tmp_path: Path) -> None:
    """`pytest.main(plugins=[ResultsPlugin(...)])` without `-p`: markers (strict), the credit fixture, module
    and function visibility markers, and the max_total check all work."""
    suite = '''
        import pytest

        pytestmark = pytest.mark.visibility("after_due_date")

        @pytest.mark.points(1.5)
        def test_hidden(credit):
            """hidden"""
            credit.award(0.5)
            raise RuntimeError("boom")

        @pytest.mark.points(1)
        @pytest.mark.visibility("visible")
        def test_public():
            """public"""
    '''
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(suite))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    script = textwrap.dedent(
        f"""
        import sys
        import pytest
        from autograder.results.plugin import ResultsPlugin
        plugin = ResultsPlugin({str(tmp_path / "results.json")!r}, max_total=2.5)
        code = pytest.main(["--strict-markers", "-q", "-p", "no:cacheprovider", "test_suite.py"], plugins=[plugin])
        print("TOTAL", plugin.results.total_score, plugin.results.max_score)
        sys.exit(int(code))
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 1, process.stdout + process.stderr
    assert "TOTAL 1.75 2.5" in process.stdout
    document = readable(load_valid(tmp_path / "results.json"))
    assert [(t["name"], t["score"], t["visibility"]) for t in document["tests"]] == [
        ("hidden", 0.75, "after_due_date"),
        ("public", 1.0, "visible"),
    ]
    assert document["tests"][0]["output"] == "RuntimeError: boom"
    assert "Warning" not in document["output"]


def test_a_suite_that_cannot_be_imported_is_reported_as_a_grader_failure(tmp_path: Path) -> None:
    good = '''
        import pytest

        @pytest.mark.points(1)
        def test_good():
            """good"""
    '''
    broken = """
        import a_module_that_does_not_exist
    """
    run = run_suite(tmp_path, {"test_good.py": good, "test_broken.py": broken})
    assert run.returncode == 2
    document = readable(load_valid(run.results))
    assert [(t["name"], t["score"], t["output"]) for t in document["tests"]] == [("good", 0.0, NOT_RUN_OUTPUT)]
    assert "could not load some of its tests" in document["output"]
    assert "test_broken.py" in run.stdout and "test_broken.py" not in document["output"]  # details: staff only
    assert "1 public test(s) did not run" in document["output"]

    empty = run_suite(tmp_path / "empty", {})
    assert empty.returncode == 5
    document = readable(load_valid(empty.results))
    assert document["tests"] == [] and document["score"] == 0
    assert document["output"].startswith("The autograder found no tests to run.")


def test_credit_rules() -> None:
    record = Credit()
    assert record.fraction is None and record.earned(True) == 1.0 and record.earned(False) == 0.0
    record.award(0.25, "shapes")
    assert record.fraction == 0.25 and record.earned(True) == 1.0 and record.earned(False) == 0.25
    record.fraction = 0.5
    assert record.earned(True) == 0.5 and record.earned(False) == 0.5
    assert record.notes == ["shapes"]
    for bad in (1.5, -0.1, float("nan"), "half", True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            record.award(bad)  # type: ignore[arg-type]


def test_a_time_limit_without_the_terminal_plugin_is_reported_as_a_time_limit(tmp_path: Path) -> None:
    """`grade` runs pytest with `-p no:terminal`; pytest-timeout's SIGALRM handler then fails on an empty
    AssertionError before its own `pytest.fail`: the student must still read that the test ran out of time."""
    suite = '''
        import time

        import pytest


        @pytest.mark.points(1)
        @pytest.mark.timeout(0.5)
        def test_sleeps():
            """sleeps"""
            time.sleep(5)
    '''
    (tmp_path / "test_sleeps.py").write_text(textwrap.dedent(suite))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    script = textwrap.dedent(
        f"""
        import pytest
        from autograder.results.plugin import ResultsPlugin
        plugin = ResultsPlugin({str(tmp_path / "results.json")!r})
        pytest.main(["-p", "no:terminal", "-p", "no:cacheprovider", "test_sleeps.py"], plugins=[plugin])
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    document = load_valid(tmp_path / "results.json")
    assert [test["output"] for test in document["tests"]] == [
        "Time limit exceeded: this test was stopped after 0.5 s."
    ], process.stderr
