"""The line counter of the "no Python loops" checks on real functions compiled under "<cell N>" names, as the
worker compiles student code, and the growth rule applied to what it counted."""

from __future__ import annotations

import functools
import sys

import pytest
import torch

from autograder.grading.loops import GROWTH_PER_ITEM, describe_grown_lines, grown_lines, untrusted_trace
from autograder.ingest import SourceCell, extract
from autograder.ingest.static import find_python_loops
from autograder.worker.probes.loops import count_student_lines

SMALL, LARGE = 8, 512

STUDENT_CELL = """\
import sys
import torch


def per_item_loop(embeddings, query, k):
    scores = []
    for embedding in embeddings:
        scores.append(embedding @ query)
    return torch.topk(torch.stack(scores), k).indices.tolist()


def per_item_comprehension(embeddings, query, k):
    scores = torch.stack([embedding @ query for embedding in embeddings])
    return torch.topk(scores, k).indices.tolist()


def fixed_comprehensions(embeddings, query, k):
    encoded = {"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1, 1]]}
    batch = {key: torch.tensor(v) for key, v in encoded.items()}
    top = torch.topk(embeddings @ query, k).indices
    return [f"image_{i}.jpg" for i in top.tolist()], batch


def loop_in_a_helper(embeddings, query, k):
    return torch.topk(torch.stack(list(map(score_one(query), embeddings))), k).indices.tolist()


def score_one(query):
    def score(embedding):
        return embedding @ query
    return score


def loop_in_a_default(embeddings, query, k, score=lambda rows, q: torch.stack([row @ q for row in rows])):
    return torch.topk(score(embeddings, query), k).indices.tolist()


def chunked(embeddings, query, k):
    scores = torch.cat([chunk @ query for chunk in embeddings.split(128)])
    return torch.topk(scores, k).indices.tolist()


def loop_untraced_and_restored(embeddings, query, k):
    tracer = sys.gettrace()
    sys.settrace(None)
    scores = torch.stack([embedding @ query for embedding in embeddings])
    sys.settrace(tracer)
    return torch.topk(scores, k).indices.tolist()


def loop_untraced(embeddings, query, k):
    sys.settrace(None)
    scores = torch.stack([embedding @ query for embedding in embeddings])
    return torch.topk(scores, k).indices.tolist()
"""

# The same cell as the grader's ingest sees it: cell 4 of a notebook, its imports in cell 1.
SUBMISSION = extract(["import sys\nimport torch", "", "", STUDENT_CELL.replace("import sys\nimport torch\n", "\n\n")])


@pytest.fixture(scope="module")
def student() -> dict:
    """The cell's functions, compiled as the worker compiles a student's definitions."""
    namespace: dict = {}
    exec(compile(STUDENT_CELL, "<cell 4>", "exec"), namespace)
    return namespace


def _observe(function, size: int) -> dict:
    generator = torch.Generator().manual_seed(size)
    embeddings = torch.randn(size, 8, generator=generator)
    query = torch.randn(8, generator=generator)
    _, counts = count_student_lines(functools.partial(function, embeddings, query, 3), function)
    return {"size": size, **counts.as_json()}


def _line(text: str) -> int:
    return next(number for number, line in enumerate(STUDENT_CELL.split("\n"), start=1) if text in line)


def _grown(function) -> list[int]:
    observations = [_observe(function, SMALL), _observe(function, LARGE)]
    assert untrusted_trace(observations, function.__name__, SUBMISSION, function.__name__) is None
    return [grown.line for grown in grown_lines(*observations)]


def test_a_for_loop_over_the_items_grows_on_its_loop_and_body_lines(student):
    assert _grown(student["per_item_loop"]) == [_line("for embedding in"), _line("scores.append")]


def test_a_comprehension_over_the_items_grows(student):
    assert _grown(student["per_item_comprehension"]) == [_line("[embedding @ query for")]


def test_comprehensions_over_the_tokenizer_keys_and_the_k_results_do_not_grow(student):
    small, large = _observe(student["fixed_comprehensions"], SMALL), _observe(student["fixed_comprehensions"], LARGE)
    assert small["lines"] == large["lines"]
    comprehension = next(count for _, line, count in small["lines"] if line == _line("for key, v in"))
    assert comprehension >= 3  # it was counted (the function line and its two keys), just not more often
    assert grown_lines(small, large) == []


def test_a_helper_called_per_item_from_c_code_grows_on_the_helpers_line(student):
    assert _grown(student["loop_in_a_helper"]) == [_line("return embedding @ query")]


def test_a_loop_in_a_default_value_grows(student):
    assert _grown(student["loop_in_a_default"]) == [_line("def loop_in_a_default")]


def test_a_loop_over_chunks_of_128_is_not_a_loop_over_the_items(student):
    observations = [_observe(student["chunked"], SMALL), _observe(student["chunked"], LARGE)]
    line = _line("chunk @ query for chunk")
    counts = [next(c for _, n, c in observation["lines"] if n == line) for observation in observations]
    assert counts[1] > counts[0]  # it grows a little (4 chunks against 1) ...
    assert counts[1] - counts[0] < GROWTH_PER_ITEM * (LARGE - SMALL)  # ... far below the per-item bar
    assert grown_lines(*observations) == []


def test_only_student_code_is_counted():
    provided: dict = {}
    exec(compile("def provided(xs):\n    return [x for x in xs]\n", "<ps7 provided>", "exec"), provided)
    _, counts = count_student_lines(functools.partial(provided["provided"], range(100)), provided["provided"])
    assert counts.lines == {} and counts.entry_lines == 0


def test_switching_tracing_off_is_not_loop_free_it_fails(student):
    function = student["loop_untraced"]
    observations = [_observe(function, SMALL), _observe(function, LARGE)]
    assert grown_lines(*observations) == []  # the loop went unseen ...
    assert not observations[0]["intact"]
    assert "tracing was switched off" in untrusted_trace(observations, "loop_untraced", extract([]), "loop_untraced")
    assert "uses cell 4, line" in untrusted_trace(observations, "loop_untraced", SUBMISSION, "loop_untraced")


def test_tracing_switched_off_and_on_around_a_loop_hides_it_but_naming_the_hooks_fails(student):
    function = student["loop_untraced_and_restored"]
    observations = [_observe(function, SMALL), _observe(function, LARGE)]
    assert grown_lines(*observations) == [] and all(observation["intact"] for observation in observations)
    message = untrusted_trace(observations, "retrieve_images", SUBMISSION, "loop_untraced_and_restored")
    assert message is not None and f"cell 4, line {_line('sys.settrace(None)')}: `settrace`" in message


def test_a_function_whose_own_lines_were_never_seen_fails():
    wrapper_only = {"size": SMALL, "lines": [], "entry_lines": 0, "intact": True}
    message = untrusted_trace([wrapper_only, {**wrapper_only, "size": LARGE}], "f", SUBMISSION, "per_item_loop")
    assert message is not None and "observed none of them" in message


def test_the_previous_tracer_is_put_back(student):
    def outer(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(outer)
    try:
        count_student_lines(functools.partial(len, "abc"), student["per_item_loop"])
        assert sys.gettrace() is outer
    finally:
        sys.settrace(previous)


def test_the_first_line_of_a_decorated_function_is_its_own(student):
    decorated = torch.no_grad()(student["per_item_comprehension"])
    observation = _observe(decorated, SMALL)
    assert observation["entry_lines"] > 0 and observation["intact"]


def test_grown_lines_are_named_with_their_cell_and_static_finding(student):
    grown = grown_lines(_observe(student["per_item_loop"], SMALL), _observe(student["per_item_loop"], LARGE))
    findings = find_python_loops(SUBMISSION, "per_item_loop")
    text = describe_grown_lines(grown, findings, SUBMISSION, (8, 512), "images")
    assert text == (
        f"cell 4, line {_line('for embedding in')}: for loop `for embedding in embeddings` (ran 9 times for 8 "
        f"images, 513 times for 512); cell 4, line {_line('scores.append')}: `scores.append(embedding @ query)` "
        "(ran 8 times for 8 images, 512 times for 512)"
    )


def test_grown_lines_name_the_cell_as_the_notebook_shows_it():
    """Cell 6 of a notebook (markdown cells before it), run as In [3]: the worker compiles it under that name, and
    the counts found there are named with it."""
    cells = [
        SourceCell("import sys\nimport torch", position=2, execution_count=1),
        SourceCell(STUDENT_CELL.replace("import sys\nimport torch\n", "\n\n"), position=6, execution_count=3),
    ]
    submission = extract(cells)
    [cell] = {definition.cell for definition in submission.definitions.values()}
    namespace: dict = {}
    exec(compile(STUDENT_CELL, cell.filename, "exec"), namespace)
    function = namespace["per_item_loop"]
    grown = grown_lines(_observe(function, SMALL), _observe(function, LARGE))
    text = describe_grown_lines(grown, find_python_loops(submission, "per_item_loop"), submission, (8, 512), "images")
    assert text == (
        f"cell 6 (In [3]), line {_line('for embedding in')}: for loop `for embedding in embeddings` (ran 9 times "
        f"for 8 images, 513 times for 512); cell 6 (In [3]), line {_line('scores.append')}: "
        "`scores.append(embedding @ query)` (ran 8 times for 8 images, 512 times for 512)"
    )
