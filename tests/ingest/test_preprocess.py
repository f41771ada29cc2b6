import ast

import pytest

from autograder.ingest import CellContext, preprocess_cells
from autograder.ingest.preprocess import drop_cell_magics, neutralise_ipython_lines, strip_leading_indent


def _one(source: str) -> tuple[str, list[str]]:
    sources, notes = preprocess_cells([source])
    return sources[0], notes[0]


@pytest.mark.parametrize(
    "line",
    [
        "%matplotlib inline",
        "%load_ext autoreload",
        "!pip install -q torchinfo",
        "!!ls -la",
        "x = !ls",
        "a, b = !cat two_lines.txt",
        "x = %time f()",
        "result =%timeit -o f()",
        "torch.nn.Conv2d?",
        "len??",
        "?len",
        "%%writefile not_first.py",
        "from google.colab import drive",
        "from google.colab import files as f",
        "import google.colab",
        "from google import colab",
        "from google.colab.patches import cv2_imshow",
        "drive.mount('/content/drive')",
        "drive.flush_and_unmount()",
        "files.upload()",
        "uploaded = files.upload()",
        "files.download('model.pt')",
    ],
)
@pytest.mark.parametrize("indented", [False, True])
def test_ipython_and_colab_lines_become_pass_at_their_indentation(line, indented):
    indent = "    " if indented else ""
    before = ["x = 1", "if x:"] if indented else ["x = 1"]
    after = [indent + "y = 2"]
    result, notes = _one("\n".join([*before, indent + line, *after]))
    assert result.split("\n") == [*before, indent + "pass", *after]
    [(number, label)] = notes
    assert number == len(before) + 1 and line.startswith(label.rstrip("…"))
    ast.parse(result)


@pytest.mark.parametrize(
    "source",
    [
        'doc = """\n!not a shell line\n%not a magic\n"""',
        "x = a % b\ny = a != b",
        "print('why?')  # really?",
        "files = sorted(names)\nfiles.sort()",
        "d = {'a': 1}\nprint(d)",
        "s = 'drive.mount(x)'",
        "value = f(\n    1,\n)",
        "t = 'it\\'s ?'\nu = '''a\n?b'''",
        "s = 'one \\\n!two'",
    ],
)
def test_python_is_left_alone(source):
    ast.parse(source)
    assert _one(source) == (source, [])


def test_backslash_continued_shell_line_is_removed_whole():
    source = "!pip install a \\\n    b \\\n    c\nX = 1"
    result, notes = _one(source)
    assert result.split("\n") == ["pass", "", "", "X = 1"]
    assert notes == [(1, "!pip install a")]


def test_multiline_colab_call_is_removed_whole():
    source = "def setup():\n    drive.mount(\n        '/content/drive',\n        force_remount=True)\n    return 1"
    result, _ = _one(source)
    assert result.split("\n") == ["def setup():", "    pass", "", "", "    return 1"]
    assert ast.parse(result)


def test_semicolon_separated_colab_statements_keep_the_rest_of_the_line():
    result, notes = _one("from google.colab import drive; drive.mount('/content/drive')")
    assert result == "pass; pass"
    assert notes == [(1, "from google.colab import drive"), (1, "drive.mount('/content/drive')")]
    result, _ = _one("import os; from google.colab import files; n = 3")
    assert result == "import os; pass; n = 3"


def test_names_imported_from_colab_are_neutralised_in_later_cells():
    sources, _ = preprocess_cells(
        ["from google.colab.patches import cv2_imshow", "def show(img):\n    cv2_imshow(img)\n    return img"]
    )
    assert sources[1] == "def show(img):\n    pass\n    return img"


def test_cell_magic_drops_a_foreign_cell_but_keeps_a_python_body():
    sources, notes = preprocess_cells(["%%bash\necho hi\nls", "%%time\ndef f():\n    return 1"])
    assert sources[0] == "\n\n"
    assert notes[0] == [(1, "%%bash cell")]
    assert sources[1] == "pass\ndef f():\n    return 1"
    assert ast.parse(sources[1])


def test_indented_cell_is_dedented_like_ipython():
    result, _ = _one("  def f():\n      return 1\n")
    assert result == "def f():\n    return 1\n"
    result, _ = _one("    # a comment\ndef g():\n    return 2")
    assert result == "    # a comment\ndef g():\n    return 2"


def test_steps_compose_and_may_not_change_line_counts():
    def upper_names(source: str, ctx: CellContext) -> str:
        ctx.note(1, f"seen {ctx.index}")
        return source.replace("x", "X")

    sources, notes = preprocess_cells(["x = 1", "%time x"], steps=(neutralise_ipython_lines, upper_names))
    assert sources == ["X = 1", "pass"]
    assert notes == [[(1, "seen 1")], [(1, "%time x"), (1, "seen 2")]]

    def join_lines(source: str, ctx: CellContext) -> str:
        return source.replace("\n", " ")

    with pytest.raises(ValueError, match="join_lines changed the line count of cell 1"):
        preprocess_cells(["a = 1\nb = 2"], steps=(strip_leading_indent, drop_cell_magics, join_lines))
