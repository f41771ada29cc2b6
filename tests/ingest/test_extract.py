import ast
import traceback

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.ingest import CellRef, IngestError, ParseLimits, SourceCell, extract, ingest

ENCODER_CELL = """\
class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, 12, 4, 2, 1), nn.ReLU())

    def forward(self, x):
        return self.net(x)
"""


def _notebook(path, sources, markdown_between=True):
    cells = []
    for source in sources:
        if markdown_between:
            cells.append(new_markdown_cell("Some explanation."))
        cells.append(new_code_cell(source))
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_colab_notebook_end_to_end(tmp_path):
    path = _notebook(
        tmp_path / "student.ipynb",
        [
            "from google.colab import drive; drive.mount('/content/drive')\n%cd /content/drive/MyDrive\n"
            "!pip install torchinfo\nimport torch\nimport torch.nn as nn\n%matplotlib inline",
            ENCODER_CELL,
            "def train_ae(model, dataloader, epochs=100):\n    return model, []\n",
            "model, loss_traj = train_ae(Encoder(), loader, epochs=100)\nplt.plot(loss_traj)\nplt.show()",
        ],
    )
    submission = ingest(path)
    assert list(submission.definitions) == ["Encoder", "train_ae"]
    # Each code cell follows a markdown cell: they are cells 2, 4, 6 and 8 of the notebook.
    assert [(i.source, i.cell) for i in submission.imports] == [
        ("import torch", CellRef(2)), ("import torch.nn as nn", CellRef(2))
    ]
    encoder = submission.definitions["Encoder"]
    assert (encoder.kind, encoder.cell, encoder.lineno) == ("class", CellRef(4), 1)
    assert encoder.source == ENCODER_CELL.rstrip("\n")
    assert submission.origin == "student.ipynb"
    assert len(submission.cell_sources) == 4
    training = [d for d in submission.diagnostics if d.startswith("cell 8:")]
    assert training == ["cell 8: 3 statements not run by the grader (model, loss_traj = train_ae(...), "
                        "plt.plot(...), plt.show(...))"]
    assert submission.diagnostics[0] == (
        "cell 2: 5 statements not run by the grader (from google.colab import drive, "
        "drive.mount('/content/drive'), %cd /content/drive/MyDrive, …)"
    )
    assert "drive" not in submission.module_source()


def test_syntax_error_costs_only_its_cell_and_reports_the_students_line():
    cells = ["import torch\n%matplotlib inline\nA = 1", "!ls\nx = 1\ndef broken(:\n    pass", "def ok():\n    return A"]
    submission = extract(cells)
    assert set(submission.definitions) == {"A", "ok"}
    errors = [d for d in submission.diagnostics if "skipped" in d]
    assert errors == ["cell 2, line 3: invalid syntax: def broken(: (cell skipped)"]


def test_python_file_diagnostics_also_give_the_file_line(tmp_path):
    path = tmp_path / "student.py"
    path.write_text("# %%\nimport os\n\n# %%\nx = 1\ny = (\n")
    submission = ingest(path)
    [error] = [d for d in submission.diagnostics if "skipped" in d]
    assert error.startswith("cell 2, line 2 (file line 6):")


def test_later_definition_wins_and_moves_to_its_cell():
    cells = ["def f():\n    return 1\nclass Model:\n    pass", "X = 2", "def f():\n    return 2"]
    submission = extract(cells)
    assert list(submission.definitions) == ["Model", "X", "f"]
    assert submission.definitions["f"].source == "def f():\n    return 2"
    assert submission.definitions["f"].cell == CellRef(3)
    namespace: dict = {}
    exec(compile(submission.module_source(), "<test>", "exec"), namespace)
    assert namespace["f"]() == 2


@pytest.mark.parametrize(
    ("statement", "kept"),
    [
        ("N = 10", True),
        ("LR: float = 1e-3", True),
        ("NAMES = ['a', ('b', -1), {'k': [1, 2]}, {3}]", True),
        ("SIZE = 64 * 64 + 2 ** 3", True),
        ("FLAG = not True", True),
        ("N = len(data)", False),
        ("N = M", False),
        ("DEVICE = torch.device('cpu')", False),
        ("S = f'{x}'", False),
        ("L = [i for i in range(3)]", False),
        ("D = {**other}", False),
        ("A, B = 1, 2", False),
        ("A = B = 1", False),
        ("N += 1", False),
    ],
)
def test_only_literal_constants_are_kept(statement, kept):
    submission = extract([statement])
    assert bool(submission.definitions) == kept
    if kept:
        [definition] = submission.definitions.values()
        assert definition.kind == "constant" and definition.source == statement
    else:
        [diagnostic] = submission.diagnostics
        assert diagnostic.startswith("cell 1: 1 statement not run by the grader (")


def test_everything_else_at_top_level_is_dropped():
    cell = "\n".join([
        "import os",
        "for i in range(3):\n    print(i)",
        "while False:\n    pass",
        "with open('f') as fh:\n    data = fh.read()",
        "if True:\n    def hidden():\n        return 1",
        "try:\n    import wandb\nexcept ImportError:\n    pass",
        "del os",
        "global g",
        "print('hi')",
        "'''a markdown-like string'''",
        "pass",
    ])
    submission = extract([cell])
    assert submission.definitions == {}
    assert [i.source for i in submission.imports] == ["import os"]
    [summary] = submission.diagnostics
    assert summary.startswith("cell 1: 8 statements not run by the grader (for loop, while loop, with block, …)")
    assert "hidden" not in summary  # only the first three labels are shown
    hint = extract(["if True:\n    def hidden():\n        return 1"]).diagnostics[0]
    assert "if block defining hidden (move definitions to top level)" in hint


def test_decorated_definitions_keep_their_decorators_and_start_line():
    cell = "import torch\n\n@torch.no_grad()\n@staticmethod\ndef evaluate(model):\n    return model"
    definition = extract([cell]).definitions["evaluate"]
    assert definition.lineno == 3
    assert definition.source.split("\n")[:3] == ["@torch.no_grad()", "@staticmethod", "def evaluate(model):"]
    padded = "\n" * (definition.lineno - 1) + definition.source
    assert ast.parse(padded).body[0].lineno == 5


def test_constant_after_a_semicolon_is_cut_exactly_even_after_non_ascii_text():
    submission = extract(["print('héllo wörld'); X = 5  # comment"])
    assert submission.definitions["X"].source == "X = 5"


def test_definition_that_only_the_compiler_rejects_is_skipped_alone():
    cell = "def bad():\n    break\n\ndef good():\n    return 1"
    submission = extract([cell])
    assert list(submission.definitions) == ["good"]
    assert submission.diagnostics == ["cell 1, line 2: 'break' outside loop (bad skipped)"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = " + "(" * 5000 + ")" * 5000, "too many nested parentheses"),
        ("x = " + "[" * 5000 + "]" * 5000, "too many nested parentheses"),
        ("x = " + "-" * 100_000 + "1", "nested too deeply for the parser"),
        ("x = " + " + ".join(["1"] * 30_000), "nested too deeply"),
        ("x = a" + ".b" * 300, "nested too deeply (more than 200 levels)"),
        ("x = 1\0", "null bytes"),
    ],
)
def test_pathological_cells_get_a_clear_per_cell_message(source, message):
    submission = extract(["def fine():\n    return 1", source])
    assert list(submission.definitions) == ["fine"]
    [diagnostic] = submission.diagnostics
    assert diagnostic.startswith("cell 2") and message in diagnostic and diagnostic.endswith("(cell skipped)")


def test_limits_on_cells_and_source_size():
    with pytest.raises(IngestError, match="has 4 code cells; at most 3"):
        extract(["x = 1"] * 4, limits=ParseLimits(max_cells=3))
    with pytest.raises(IngestError, match="at most 10 are accepted"):
        extract(["x = 12345", "y = 12345"], limits=ParseLimits(max_total_chars=10))
    long_cell = "B = '" + "b" * 100 + "'"
    submission = extract(["A = 1", long_cell], limits=ParseLimits(max_cell_chars=50))
    assert list(submission.definitions) == ["A"]
    expected = f"cell 2: cell is too long ({len(long_cell)} characters; the limit is 50) (cell skipped)"
    assert submission.diagnostics == [expected]


def test_module_source_renders_imports_constants_then_definitions_and_guards_imports():
    cells = [
        "import math\nimport package_that_does_not_exist_anywhere",
        "def area(r):\n    return math.pi * r * r",
        "import math\nRADIUS = 2",
        "from __future__ import annotations",
    ]
    submission = extract(cells)
    source = submission.module_source()
    assert source.startswith("from __future__ import annotations  # cell 4\n")
    assert source.count("\n    import math\n") == 1
    assert source.index("RADIUS = 2") < source.index("def area")
    assert "# cell 2, line 1\ndef area" in source
    namespace: dict = {}
    exec(compile(source, "<test>", "exec"), namespace)
    assert namespace["area"](namespace["RADIUS"]) == pytest.approx(12.566370614359172)
    [(where, statement, error)] = namespace["__ingest_import_errors__"]
    assert where == "cell 1, line 2" and "package_that_does_not_exist_anywhere" in statement + error

    unguarded = submission.module_source({"RADIUS"}, guard_imports=False)
    assert "def area" not in unguarded and "try:" not in unguarded
    with pytest.raises(ModuleNotFoundError):
        exec(compile(unguarded, "<test>", "exec"), {})
    with pytest.raises(KeyError, match="not defined in the submission: Decoder"):
        submission.module_source({"Decoder", "area"})


def test_other_top_level_statements_are_kept_as_written_with_their_place():
    cells = [
        "import torch\nx = 1; device = torch.device('cpu')",
        "with torch.no_grad():\n    y = torch.zeros(2)\nbreak_me = 2\nprint('héllo'); cfg = dict(a=1)",
    ]
    submission = extract(cells)
    kept = [(s.source, s.cell, s.lineno, s.label) for s in submission.statements]
    assert kept == [
        ("device = torch.device('cpu')", CellRef(1), 2, "device = torch.device(...)"),
        ("with torch.no_grad():\n    y = torch.zeros(2)", CellRef(2), 1, "with block"),
        ("print('héllo')", CellRef(2), 4, "print(...)"),
        ("cfg = dict(a=1)", CellRef(2), 4, "cfg = dict(...)"),
    ]
    for statement in submission.statements:
        compile(statement.source, "<test>", "exec")


def test_redefinitions_are_recorded_in_cell_order():
    submission = extract(["class Encoder:\n    pass", "def f():\n    pass", "class Encoder:\n    x = 1"])
    assert submission.redefinitions == {"Encoder": [(CellRef(1), 1), (CellRef(3), 1)]}
    assert submission.definitions["Encoder"].cell == CellRef(3)


def test_source_cells_and_plain_strings_are_both_accepted():
    from_strings = extract(["def f():\n    return 1"])
    from_cells = extract([SourceCell("def f():\n    return 1", file_line=7)])
    assert from_strings.definitions == from_cells.definitions
    assert from_cells.file_lines == [7]


def test_imports_of_the_grader_package_are_skipped_with_a_message():
    submission = extract(
        [
            "import torch\nimport autograder.worker.standard as s\nfrom autograder import cli\n"
            "from autograder_helpers import x\nfrom .autograder import y"
        ]
    )
    kept = [statement.source for statement in submission.imports]
    assert kept == ["import torch", "from autograder_helpers import x", "from .autograder import y"]
    messages = [text for text in submission.diagnostics if "grader's own package" in text]
    assert len(messages) == 2 and all("skipped" in text for text in messages)


def test_messages_name_cells_as_the_notebook_shows_them(tmp_path):
    """Positions count every cell (markdown too) and `In [N]` is added for a cell that ran, in diagnostics, in the
    places of definitions and in the file name tracebacks show."""
    path = tmp_path / "ran.ipynb"
    cells = [
        new_markdown_cell("# Problem Set 7"),
        new_code_cell("import torch\nprint('setup')", execution_count=1),
        new_markdown_cell("## 7.1.1"),
        new_code_cell("def encode(x):\n    y = x + 1\n    raise ValueError(y)", execution_count=7),
        new_code_cell("def broken(:\n    pass"),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    submission = ingest(path)
    assert [str(cell) for cell in submission.cells] == ["cell 2 (In [1])", "cell 4 (In [7])", "cell 5"]
    assert submission.diagnostics == [
        "cell 2 (In [1]): 1 statement not run by the grader (print(...))",
        "cell 5, line 1: invalid syntax: def broken(: (cell skipped)",
    ]
    encode = submission.definitions["encode"]
    assert (encode.cell, encode.cell.execution_count, encode.lineno) == (CellRef(4), 7, 1)
    assert "# cell 2 (In [1]), line 1" in submission.module_source(guard_imports=False)
    namespace: dict = {}
    exec(compile(encode.source, encode.cell.filename, "exec"), namespace)
    with pytest.raises(ValueError) as raised:
        namespace["encode"](1)
    frame = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno) == ("<cell 4 (In [7])>", 3)
