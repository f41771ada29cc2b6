"""results.json model: cleaning of student-caused text, score sanitising, the atomic writer, fallbacks."""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.results import (
    Results,
    TestResult,
    TestSpec,
    clean_text,
    fallback_results,
    load_results,
    write_results,
)
from autograder.results.gradescope import TEST_OUTPUT_LIMIT, TOP_OUTPUT_LIMIT, from_markdown, to_markdown
from tests.results.test_schema import assert_valid, load_valid


def test_clean_text_removes_control_characters_escapes_and_surrogates() -> None:
    raw = "line1\r\nline2\rline3\x00\x07\tTab \x1b[1;31mred\x1b[0m \x1b]0;title\x07 lone \udc80 end\x7f"
    cleaned = clean_text(raw, None)
    assert cleaned.startswith("line1\nline2\nline3\ufffd\ufffd\tTab red  lone \ufffd end\ufffd")
    assert "\x1b" not in cleaned and "\x00" not in cleaned
    cleaned.encode("utf-8")  # a lone surrogate would make this raise


def test_clean_text_decodes_bytes_and_survives_objects_that_cannot_print() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert clean_text(b"caf\xc3\xa9 \xff", None) == "caf\u00e9 \ufffd"
    assert clean_text(Hostile(), None) == "<unprintable Hostile>"
    assert clean_text(3.5, None) == "3.5"


@pytest.mark.parametrize("length", [TEST_OUTPUT_LIMIT + 1, 3 * TEST_OUTPUT_LIMIT, 50 * TEST_OUTPUT_LIMIT])
def test_clean_text_cuts_the_middle_and_says_how_much(length: int) -> None:
    text = "HEAD" + "m" * (length - 8) + "TAIL"
    cleaned = clean_text(text, TEST_OUTPUT_LIMIT)
    assert len(cleaned) <= TEST_OUTPUT_LIMIT
    assert cleaned.startswith("HEAD") and cleaned.endswith("TAIL")
    marker = re.search(r"\n\n\[\.\.\. (\d+) characters left out[^\]]*\]\n\n", cleaned)
    assert marker is not None
    assert len(cleaned) - len(marker.group(0)) + int(marker.group(1)) == length


def test_clean_text_leaves_short_text_alone() -> None:
    text = "x" * TEST_OUTPUT_LIMIT
    assert clean_text(text, TEST_OUTPUT_LIMIT) == text


def test_results_serialise_with_limits_and_clean_scores() -> None:
    results = Results(
        tests=[
            TestResult("a" * 2000, None, float("nan"), 2.0, "failed", "o" * 100_000),
            TestResult("b", "7.1.2", 5.0, 1.0, "passed"),
            TestResult("c", "7.1.3", 0.1 + 0.2, 1.0, "failed"),
        ],
        output="t" * 1_000_000,
        execution_time=3.6,
    )
    document = results.to_dict()
    assert_valid(document)
    first, second, third = document["tests"]
    assert first["score"] == 0.0 and "number" not in first
    assert len(first["output"]) <= TEST_OUTPUT_LIMIT and len(first["name"]) <= 500
    assert second["score"] == 1.0  # clamped to max_score
    assert third["score"] == 0.3
    assert document["score"] == pytest.approx(1.3) and results.total_score == document["score"]
    assert results.max_score == 4.0
    assert len(document["output"]) <= TOP_OUTPUT_LIMIT
    assert document["execution_time"] == 4
    # Markdown for the grader's words (see test_markdown_*), plain text for names
    assert document["output_format"] == document["test_output_format"] == "md"
    assert document["test_name_format"] == "text"
    assert document["stdout_visibility"] == "hidden"


def test_invalid_enumerations_are_grader_errors_not_silently_written() -> None:
    with pytest.raises(ValueError, match="visibility must be one of"):
        TestResult("a", None, 0, 1, "failed", visibility="public")
    with pytest.raises(ValueError, match="status must be one of"):
        TestResult("a", None, 0, 1, "skipped")
    with pytest.raises(ValueError, match="stdout_visibility"):
        Results(stdout_visibility="always")


def test_write_results_is_0644_leaves_no_temporary_file_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "results" / "results.json"
    results = Results([TestResult("7.1.1 Encoder", "7.1.1", 0.5, 1.0, "failed", "half", tags=("ae",))], output="hi")
    assert write_results(results, path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    loaded = load_results(path)
    assert loaded.to_dict() == results.to_dict()
    assert loaded.tests[0].spec == TestSpec("7.1.1 Encoder", 1.0, "7.1.1", "visible", ("ae",))


def test_write_results_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.json"
    write_results(Results(output="old"), path)

    def broken_replace(source: str, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_results(Results(output="new"), path)
    assert load_valid(path)["output"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """A writer process rewrites the same path with alternately tiny and large results; every read of
    the path meanwhile must be complete, parseable and self-consistent."""
    path = tmp_path / "results.json"
    write_results(Results(output="start"), path)
    writer = textwrap.dedent(
        f"""
        from autograder.results import Results, TestResult, write_results
        for round in range(40):
            count = 1 if round % 2 else 200
            tests = [TestResult(f"t{{i}}", None, 1.0, 1.0, "passed", "o" * 2000) for i in range(count)]
            write_results(Results(tests, extra_data={{"count": count}}), {str(path)!r})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer])
    reads, sizes = 0, set()
    try:
        while process.poll() is None:
            document = json.loads(path.read_text(encoding="utf-8"))
            if "extra_data" in document:
                assert len(document["tests"]) == document["extra_data"]["count"]
                sizes.add(len(document["tests"]))
            reads += 1
    finally:
        process.wait(timeout=60)
    assert process.returncode == 0
    assert reads > 10 and sizes  # the reader did see the writer's files while it was writing
    assert len(load_valid(path)["tests"]) == 1  # the last round (39) writes one test
    assert not [p for p in tmp_path.iterdir() if p.name != "results.json"]


def test_fallback_lists_every_test_at_zero_with_the_message() -> None:
    specs = [
        TestSpec("7.1.1 Encoder: shape", 1.0, "7.1.1"),
        TestSpec("7.2.2 CLIPModel: loss", 2.0, "7.2.2", "after_due_date", ("clip",)),
    ]
    results = fallback_results("worker could not start: out of memory", specs)
    document = results.to_dict()
    assert_valid(document)
    assert document["score"] == 0
    assert [(t["name"], t["number"], t["max_score"], t["visibility"]) for t in document["tests"]] == [
        (spec.name, spec.number, spec.max_score, spec.visibility) for spec in specs
    ]
    assert document["tests"][1]["tags"] == ["clip"]
    assert all(t["status"] == "failed" and "not your fault" in t["output"] for t in document["tests"])
    assert "worker could not start: out of memory" in document["output"]
    assert "not your fault" in document["output"] and "contact the course staff" in document["output"]


def test_load_results_names_the_file_and_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(ValueError, match="missing.json: no such results file"):
        load_results(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not a JSON results file"):
        load_results(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"score": 1, "tests": [{"name": "a", "score": "high"}]}))
    with pytest.raises(ValueError, match=r"wrong.json: tests\[0\].score must be a number"):
        load_results(wrong)
    infinite = tmp_path / "infinite.json"
    infinite.write_text('{"tests": [{"name": "a", "score": 1, "max_score": NaN}]}')  # Python's JSON reads NaN
    with pytest.raises(ValueError, match=r"infinite.json: tests\[0\].max_score must be a finite number"):
        load_results(infinite)
    huge = tmp_path / "huge.json"
    huge.write_text('{"tests": [{"name": "a", "score": 1%s, "max_score": 1}]}' % ("0" * 400))  # JSON has no limit
    with pytest.raises(ValueError, match=r"huge.json: tests\[0\].score is too large a number"):
        load_results(huge)
    bad_visibility = tmp_path / "visibility.json"
    bad_visibility.write_text(json.dumps({"tests": [{"name": "a", "score": 1, "visibility": "public"}]}))
    with pytest.raises(ValueError, match=r"visibility.json: tests\[0\]: visibility must be one of"):
        load_results(bad_visibility)


HOSTILE_TEXTS = [
    "expected loss 3.47, observed 1.2: logits multiplied by the temperature?",
    "no number in `method 2 accuracy: **about** [half](http://evil.example/x.png)`",
    "# heading\n> quote\n- item\n+ item\n1. one\n2) two\n7.1.5 report\n===\n---\n***",
    "<img src=x onerror=alert(1)> &amp; &#x3C; www.evil.example a@b.example $x^2$ | a | b |\n|---|---|",
    "~~struck~~ _em_ __strong__ ![img](x) [ref]: http://x \\ trailing backslash\\",
    'NotImplementedError: not yet\nTraceback (your code):\n  File "<cell 7>", line 5, in __init__\n'
    "    raise ```NotImplementedError``` # <b>not bold</b>\nNotImplementedError",
    "a\n\n\nb  \nc",
    "",
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_markdown_round_trips_to_the_same_text(text: str) -> None:
    assert from_markdown(to_markdown(text)) == text
    results = Results([TestResult("t", "1", 0.0, 1.0, "failed", text)], output=text)
    assert Results.from_dict(results.to_dict()).tests[0].output == text
    assert Results.from_dict(results.to_dict()).output == text


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_markdown_renders_as_the_text_itself_never_as_markup(text: str) -> None:
    """Rendered by a CommonMark renderer with GitHub's tables and strikethrough, the output holds only
    paragraphs, line breaks and code blocks, and reads as the text (a student's string never becomes a link,
    an image, emphasis, a heading, a list or HTML)."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(to_markdown(text))
    tags = set(re.findall(r"</?([a-z0-9]+)", html))
    assert tags <= {"p", "br", "pre", "code"}, (tags, html)
    visible = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
    assert " ".join(visible.split()) == " ".join(text.split())
