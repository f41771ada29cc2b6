"""The source format: cells, solution regions, includes."""

import pytest

from autograder.assignment.source import SourceError, provided_code, read_source_cells, render


def test_region_becomes_todo_and_raise_in_template():
    text = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    assert render(text, solution=True) == "def f(x):\n    y = 1\n    return x + y"
    assert render(text, solution=False) == (
        "def f(x):\n    y = 1\n    # TODO: your code here\n    raise NotImplementedError"
    )


def test_template_section_replaces_the_default_todo():
    text = "f(\n    ### BEGIN SOLUTION\n    flag=True,\n    ### TEMPLATE\n    flag=...,\n    ### END SOLUTION\n)"
    assert render(text, solution=True) == "f(\n    flag=True,\n)"
    assert render(text, solution=False) == "f(\n    flag=...,\n)"


@pytest.mark.parametrize(
    "text",
    [
        "### BEGIN SOLUTION\nx = 1\n",
        "x = 1\n### END SOLUTION\n",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
    ],
)
def test_unbalanced_markers_are_rejected(text):
    with pytest.raises(SourceError):
        render(text, solution=True)


def test_cells_kinds_tags_and_markdown(tmp_path):
    source = tmp_path / "src.py"
    source.write_text(
        "# header ignored\n# %% [markdown]\n# # Title\n#\n# text\n"
        '# %% tags=["provided"]\nimport os\n# %%\nprint(1)\n'
    )
    cells = read_source_cells(source)
    assert [(c.kind, c.tags) for c in cells] == [("markdown", ()), ("code", ("provided",)), ("code", ())]
    assert cells[0].text == "# Title\n\ntext"
    assert provided_code(source) == "import os"


def test_markdown_line_without_comment_prefix_names_the_cell(tmp_path):
    source = tmp_path / "src.py"
    source.write_text("# %% [markdown]\n# fine\nnot a comment\n")
    with pytest.raises(SourceError, match="line 1"):
        read_source_cells(source)


def test_include_inlines_module_code_without_docstring(tmp_path, monkeypatch):
    import autograder.assignment.source as source_module

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "helper.py").write_text('"""Docstring that stays out of the notebook."""\n\nimport os\n\nX = 1\n')
    monkeypatch.setattr(source_module, "PACKAGE_ROOT", package)
    source = tmp_path / "src.py"
    source.write_text('# %% tags=["provided"]\n# INCLUDE pkg/helper.py\nY = X\n')
    assert read_source_cells(source)[0].text == "import os\n\nX = 1\nY = X"


def test_include_of_a_missing_file_is_an_error(tmp_path):
    source = tmp_path / "src.py"
    source.write_text('# %% tags=["provided"]\n# INCLUDE nowhere/missing.py\n')
    with pytest.raises(SourceError, match="missing.py"):
        read_source_cells(source)
