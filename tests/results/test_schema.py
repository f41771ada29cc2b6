"""The JSON Schema written from Gradescope's specification, and the checks every results file we write must
pass (the other test modules import `assert_valid` and `load_valid` from here)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from autograder.results import Results, TestResult, TestSpec, fallback_results, write_results

SCHEMA_PATH = Path(__file__).with_name("gradescope_results.schema.json")
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def assert_valid(document: dict[str, Any]) -> None:
    """Gradescope's schema, plus what ours promises beyond it: finite scores within [0, max_score] and a
    top-level score equal to the sum of the tests' scores."""
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda error: list(error.path))
    assert not errors, "; ".join(f"{list(error.path)}: {error.message}" for error in errors)
    for test in document["tests"]:
        assert math.isfinite(test["score"]) and 0.0 <= test["score"] <= test["max_score"], test
    assert document["score"] == pytest.approx(sum(test["score"] for test in document["tests"]), abs=1e-6)


def load_valid(path: Path) -> dict[str, Any]:
    """Read a results file as strict JSON (NaN/Infinity are not JSON) and check it with `assert_valid`."""

    def reject(constant: str) -> None:
        raise AssertionError(f"{path}: non-JSON constant {constant}")

    document = json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)
    assert_valid(document)
    return document


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["tests"][0].update(visibility="students"), "unknown visibility"),
        (lambda d: d["tests"][0].update(status="ok"), "unknown status"),
        (lambda d: d.update(output_format="rtf"), "unknown output format"),
        (lambda d: d["tests"][0].update(max_points=1), "misspelt key"),
        (lambda d: d["tests"][0].update(number=1), "number must be a string"),
        (lambda d: (d.pop("score"), d["tests"][0].pop("score")), "no score anywhere"),
        (lambda d: d.update(leaderboard=[{"name": "acc", "value": 1, "order": "up"}]), "bad leaderboard order"),
    ],
)
def test_schema_rejects_what_gradescope_does_not_accept(change: Any, why: str) -> None:
    document = Results([TestResult("t", "1", 1.0, 1.0, "passed")]).to_dict()
    VALIDATOR.validate(document)
    change(document)
    assert not VALIDATOR.is_valid(document), why


def test_schema_accepts_the_specification_example_shape() -> None:
    document = {
        "score": 44.0,
        "execution_time": 136,
        "output": "Text relevant to the entire submission",
        "output_format": "simple_format",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "after_due_date",
        "stdout_visibility": "visible",
        "extra_data": {},
        "tests": [
            {
                "score": 2.0,
                "max_score": 2.0,
                "status": "passed",
                "name": "Your name here",
                "name_format": "text",
                "number": "1.1",
                "output": "Giant multiline string",
                "output_format": "text",
                "tags": ["tag1", "tag2"],
                "visibility": "visible",
                "extra_data": {},
            }
        ],
        "leaderboard": [{"name": "Accuracy", "value": 0.926}, {"name": "Time", "value": 15.1, "order": "asc"}],
    }
    VALIDATOR.validate(document)


def test_every_kind_of_results_we_write_validates(tmp_path: Path) -> None:
    specs = [TestSpec("7.1.1 Encoder", 1.0, "7.1.1"), TestSpec("7.2.2 CLIP", 2.0, None, "after_due_date", ("clip",))]
    nasty = "bad\x00bytes \ud800 \x1b[31mred\x1b[0m " + "y" * 20000
    variants = {
        "empty": Results(),
        "fallback": fallback_results("worker crashed: " + nasty, specs),
        "fallback without tests": fallback_results("no submission found"),
        "graded": Results(
            tests=[
                TestResult("a", "1", 1.0, 1.0, "passed", tags=["x"], extra_data={"loss": float("nan")}),
                TestResult(nasty, None, float("inf"), 2.0, "failed", nasty, "hidden"),
                TestResult("c", "3", -4.0, 1.0, "failed", b"\xff\xfe binary", "after_published"),
            ],
            execution_time=12.6,
            output=nasty * 5,
            visibility="after_due_date",
            extra_data={"accuracy": 0.31, 3: [float("inf"), object()]},
        ),
    }
    for label, results in variants.items():
        path = write_results(results, tmp_path / f"{label}.json")
        document = load_valid(path)
        assert len(document["tests"]) == len(results.tests), label
