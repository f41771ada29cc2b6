import pytest

from autograder.ingest import extract, function_has_python_loops, keyword_arguments_of_calls
from autograder.ingest.static import find_tracing_names

CLIP_CELL = """\
class CLIPModel(nn.Module):
    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature

    def forward(self, batch):
        logits = batch["image"] @ batch["text"].T / self.temperature
        return self._symmetric(logits)

    def _symmetric(self, logits):
        labels = torch.arange(len(logits))
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def slow_forward(self, batch):
        total = 0
        for i in range(len(batch)):
            total += i
        while total > 0:
            total -= 1
        return total
"""

LOOPS_CELL = """\
def every_kind(x):
    a = [v for v in x]
    b = sum(v for v in x)
    c = {v for v in x}
    d = {v: v for v in x}

    def inner():
        for item in x:
            yield item
    return a, b, c, d, inner


def uses_helper(x):
    return helper(x)


def helper(x):
    return [v * 2 for v in x]


def loop_free(image_embeddings, text_embedding, k=9):
    scores = image_embeddings @ text_embedding
    return torch.topk(scores, k).indices


def recursive(n):
    return recursive(n - 1) if n else 0
"""


@pytest.fixture(scope="module")
def submission():
    return extract(["import torch", CLIP_CELL, LOOPS_CELL, "LIMIT = 3"])


def _line_of(cell: str, text: str) -> int:
    return next(number for number, line in enumerate(cell.split("\n"), start=1) if text in line)


def test_loop_free_function_and_method_give_an_empty_list(submission):
    assert function_has_python_loops(submission, "loop_free") == []
    assert function_has_python_loops(submission, "CLIPModel.forward") == []
    assert function_has_python_loops(submission, "recursive") == []


def test_method_loops_are_found_with_cell_lines(submission):
    found = function_has_python_loops(submission, "CLIPModel.slow_forward")
    assert found == [
        f"cell 2, line {_line_of(CLIP_CELL, 'for i in')}: for loop `for i in range(len(batch))`",
        f"cell 2, line {_line_of(CLIP_CELL, 'while total')}: while loop `while total > 0`",
    ]


def test_every_kind_of_loop_including_a_nested_function(submission):
    found = function_has_python_loops(submission, "every_kind")
    kinds = [entry.split(": ", 1)[1].split(" `")[0] for entry in found]
    assert kinds == [
        "list comprehension", "generator expression", "set comprehension", "dict comprehension", "for loop",
    ]
    assert found[-1] == f"cell 3, line {_line_of(LOOPS_CELL, 'for item in x')}: for loop `for item in x`"


def test_loops_in_helpers_are_followed_unless_disabled(submission):
    found = function_has_python_loops(submission, "uses_helper")
    assert found == [
        f"in helper helper: cell 3, line {_line_of(LOOPS_CELL, 'v * 2')}: list comprehension `[v * 2 for v in x]`"
    ]
    assert function_has_python_loops(submission, "uses_helper", follow_helpers=False) == []


def test_same_class_method_helpers_are_followed():
    cell = CLIP_CELL.replace("return self._symmetric(logits)", "return self.slow_forward(logits)")
    found = function_has_python_loops(extract([cell]), "CLIPModel.forward")
    assert len(found) == 2 and all(entry.startswith("in helper CLIPModel.slow_forward: cell 1") for entry in found)


@pytest.mark.parametrize(
    ("qualname", "message"),
    [
        ("retrieve_images", "no function or class named 'retrieve_images'"),
        ("CLIPModel.backward", "'backward' is not defined in CLIPModel"),
        ("LIMIT", "no function or class named 'LIMIT'"),
        ("CLIPModel", "is a class, not a function"),
    ],
)
def test_missing_names_raise_key_error(submission, qualname, message):
    with pytest.raises(KeyError, match=message):
        function_has_python_loops(submission, qualname)


def test_keyword_values_of_the_three_method_cells_are_read_without_running_them():
    cells = [
        "def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):\n    return cls, []",
        "cls1, traj1 = train_classifier(encoder, cls, train_loader, supervised=False)",
        "%%time\ncls2, traj2 = train_classifier(\n    Encoder(), cls, train_loader,\n    supervised=True,\n)",
        "!nvidia-smi\ncls3, traj3 = train_classifier(random_encoder, cls, train_loader, epochs=100, supervised=False)",
        "FLAG = False\ncls4, _ = train_classifier(e, c, l, supervised=FLAG)",
        "cls5, _ = train_classifier(e, c, l)",
        "cls6, _ = train_classifier(e, c, l, 100, True)",
        "cls7, _ = train_classifier(e, c, l, supervised=True",
        "def probe():\n    return utils.train_classifier(e, c, l, supervised=True)",
        "# train_classifier(e, c, l, supervised=True)",
    ]
    submission = extract(cells)

    def found(name: str, keyword: str, **options) -> list[tuple[int, object]]:
        calls = keyword_arguments_of_calls(submission, name, keyword, **options)
        return [(cell.position, value) for cell, value in calls]

    assert found("train_classifier", "supervised") == [
        (2, False), (3, True), (4, False), (5, None), (6, None), (7, None),
    ]
    assert found("train_classifier", "supervised", position=4)[-1] == (7, True)
    assert found("utils.train_classifier", "supervised") == [(9, True)]
    assert found("train_classifier", "epochs") == [
        (2, None), (3, None), (4, 100), (5, None), (6, None), (7, None),
    ]


HIDDEN_CELL = """\
def loss_of_pairs(logits, combine=lambda rows: sum(row.max() for row in rows)):
    return combine(logits)


def scored_by_default(x, score=helper):
    return score(x)


class Scorer:
    def __call__(self, x):
        return [v for v in x]


def uses_a_helper_class(x):
    return Scorer()(x)


@with_loop
def decorated(x):
    return x


def with_loop(function):
    return lambda x: [function(v) for v in x]
"""


def test_loops_in_default_values_and_helpers_they_name_are_found():
    hidden = extract([LOOPS_CELL, HIDDEN_CELL])
    assert function_has_python_loops(hidden, "loss_of_pairs") == [
        "cell 2, line 1: generator expression `(row.max() for row in rows)`"
    ]
    assert function_has_python_loops(hidden, "scored_by_default") == [
        f"in helper helper: cell 1, line {_line_of(LOOPS_CELL, 'v * 2')}: list comprehension `[v * 2 for v in x]`"
    ]


def test_student_classes_a_function_uses_and_decorators_are_followed():
    hidden = extract([HIDDEN_CELL])
    assert function_has_python_loops(hidden, "uses_a_helper_class") == [
        f"in helper Scorer.__call__: cell 1, line {_line_of(HIDDEN_CELL, '[v for v in x]')}: list comprehension "
        "`[v for v in x]`"
    ]
    assert function_has_python_loops(hidden, "decorated") == [
        f"in helper with_loop: cell 1, line {_line_of(HIDDEN_CELL, 'function(v) for v')}: list comprehension "
        "`[function(v) for v in x]`"
    ]


def test_tracing_hooks_are_found_in_the_function_and_its_helpers_however_they_are_named():
    cells = [
        "import sys",
        "def quiet():\n    sys._getframe(1).f_trace_lines = False",
        "def retrieve(x):\n    quiet()\n    hook = getattr(sys, 'settrace')\n    return x",
        "def clean(x):\n    return x @ x.T",
    ]
    found = find_tracing_names(extract(cells), "retrieve")
    assert found == [
        "cell 3, line 3: `settrace`",
        "in helper quiet: cell 2, line 2: `f_trace_lines`",
        "in helper quiet: cell 2, line 2: `_getframe`",
    ]
    assert find_tracing_names(extract(cells), "clean") == []
