import json
import random
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from autograder.ingest import IngestError, ingest, read_cells


def _write_notebook(path, cells, minor=None):
    notebook = new_notebook(cells=cells)
    if minor is not None:
        notebook.nbformat_minor = minor
        if minor < 5:
            for cell in notebook.cells:
                cell.pop("id", None)
    nbformat.write(notebook, path)
    return path


def test_notebook_keeps_only_code_cells_in_order(tmp_path):
    path = _write_notebook(
        tmp_path / "ps7.ipynb",
        [
            new_markdown_cell("# Title"),
            new_code_cell("import torch", outputs=[new_output("stream", text="hello\n")]),
            new_raw_cell("raw text"),
            new_code_cell("def f():\n    return 1"),
        ],
    )
    cells = read_cells(path)
    assert [cell.source for cell in cells] == ["import torch", "def f():\n    return 1"]
    assert all(cell.file_line is None for cell in cells)


@pytest.mark.parametrize("minor", [0, 2, 4, 5])
def test_any_nbformat_4_minor_is_read(tmp_path, minor):
    path = _write_notebook(tmp_path / "nb.ipynb", [new_code_cell("x = 1"), new_code_cell("y = 2")], minor=minor)
    assert json.loads(path.read_text())["nbformat_minor"] == minor
    assert [cell.source for cell in read_cells(path)] == ["x = 1", "y = 2"]


def test_list_of_lines_source_and_crlf_are_normalised(tmp_path):
    raw = {
        "nbformat": 4, "nbformat_minor": 2, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": 3, "outputs": [],
                   "source": ["def f():\r\n", "    return 2\r\n"]}],
    }
    path = tmp_path / "lines.ipynb"
    path.write_text(json.dumps(raw))
    assert read_cells(path)[0].source == "def f():\n    return 2\n"


def test_fifty_megabyte_notebook_of_outputs_is_accepted_quickly(tmp_path):
    placeholder = "PLACEHOLDER_PNG"
    cells = [
        new_code_cell(f"x{i} = {i}", outputs=[new_output("display_data", data={"image/png": placeholder})])
        for i in range(55)
    ]
    path = _write_notebook(tmp_path / "big.ipynb", cells)
    payload = "iVBORw0KGgo" * (1_000_000 // 11)
    path.write_text(path.read_text().replace(placeholder, payload))
    assert path.stat().st_size > 50 * 2**20
    started = time.perf_counter()
    result = read_cells(path)
    elapsed = time.perf_counter() - started
    assert [cell.source for cell in result] == [f"x{i} = {i}" for i in range(55)]
    assert elapsed < 10, f"reading a 50 MB notebook took {elapsed:.1f} s"


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = _write_notebook(tmp_path / "huge.ipynb", [new_code_cell("x = 1" + " " * 5000)])
    with pytest.raises(IngestError, match=r"huge\.ipynb .*not accepted.*Clear the outputs"):
        read_cells(path, max_file_bytes=1000)


@pytest.mark.parametrize("version", [3, 2])
def test_old_notebook_formats_are_refused_with_a_fix(tmp_path, version):
    raw = {
        "nbformat": version, "nbformat_minor": 0, "metadata": {"name": "old"},
        "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1", "language": "python",
                                   "outputs": [], "collapsed": False, "metadata": {}}], "metadata": {}}],
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(raw))
    with pytest.raises(IngestError, match=rf"old\.ipynb uses the old notebook format {version}.*save it"):
        read_cells(path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"is empty"),
        (b"[1, 2, 3]", r"JSON list, not an object"),
        (b'{"cells": [], "nbformat": 4, "metadata"', r"invalid JSON at line 1"),
        (b'{"hello": "world"}', r"not a Jupyter notebook"),
        (b'{"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": {"a": 1}}', r"'cells' is not a list"),
        (b'{"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [{"cell_type": "code", "source": 5}]}',
         r"cell 1 has no readable source"),
        (b'{"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [{"cell_type": "markdown", "source": ""}]}',
         r"no code cells"),
        (b'{"nbformat": 5, "cells": []}', r"format 5"),
        (b"[" * 100_000, r"nested too deeply|invalid JSON"),
    ],
)
def test_malformed_notebooks_raise_a_clear_error_naming_the_file(tmp_path, content, pattern):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=pattern) as info:
        read_cells(path)
    assert "bad.ipynb" in str(info.value)


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "garbage.ipynb"
    path.write_bytes(b"\xff\xfe" + random.Random(0).randbytes(4096))
    with pytest.raises(IngestError, match=r"garbage\.ipynb is not a notebook: it is not UTF-8"):
        read_cells(path)


def test_other_file_kinds_and_missing_files_name_the_accepted_kinds(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(IngestError, match=r"report\.pdf.*\.ipynb.*\.py"):
        read_cells(pdf)
    with pytest.raises(IngestError, match=r"missing\.ipynb: no such file"):
        read_cells(tmp_path / "missing.ipynb")


def test_percent_format_python_file_is_split_into_code_cells(tmp_path):
    text = "\n".join([
        "# ---",               # 1: jupytext header, comments only
        "# jupyter: {}",       # 2
        "# ---",               # 3
        "",                    # 4
        "# %%",                # 5
        "import torch",        # 6
        "",                    # 7
        "# %% [markdown]",     # 8
        "# ## 7.1 Autoencoders",  # 9
        "",                    # 10
        "#%% Encoder",         # 11
        "class Encoder:",      # 12
        "    pass",            # 13
        "# %% tags=['x']",     # 14
        "X = 1",               # 15
    ])
    path = tmp_path / "ps7.py"
    path.write_text(text)
    cells = read_cells(path)
    assert [cell.source.strip() for cell in cells] == ["import torch", "class Encoder:\n    pass", "X = 1"]
    lines = text.split("\n")
    for cell in cells:
        assert lines[cell.file_line - 1] == cell.source.split("\n")[0]


def test_nbconvert_script_and_plain_python_files(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("#!/usr/bin/env python\n# coding: utf-8\n\n# In[1]:\n\n\nimport os\n\n\n# In[ ]:\n\n\nY = 2\n")
    assert [cell.source.strip() for cell in read_cells(script)] == ["import os", "Y = 2"]
    plain = tmp_path / "plain.py"
    plain.write_text("import os\n\ndef f():\n    return os.sep\n")
    cells = read_cells(plain)
    assert len(cells) == 1 and cells[0].file_line == 1 and "def f()" in cells[0].source


def test_python_file_encoding_is_respected_and_bad_bytes_refused(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes("# -*- coding: latin-1 -*-\nNAME = 'café'\n".encode("latin-1"))
    assert "café" in read_cells(latin)[0].source
    broken = tmp_path / "broken.py"
    broken.write_bytes(b"NAME = '\xe9\xff'\n")
    with pytest.raises(IngestError, match=r"broken\.py is not readable Python text"):
        read_cells(broken)
    empty = tmp_path / "blank.py"
    empty.write_text("\n\n# only a comment\n")
    with pytest.raises(IngestError, match=r"blank\.py contains no Python code"):
        read_cells(empty)


def test_markdown_cells_are_kept_as_text_for_the_reports(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("intro"),
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_markdown_cell("method 1 accuracy: 0.31"),
        ]
    )
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    assert [cell.kind for cell in read_cells(path, include_text=True)] == ["text", "code", "text"]
    assert [cell.kind for cell in read_cells(path)] == ["code"]
    assert ingest(path).text_cells == ["intro", "method 1 accuracy: 0.31"]
    script = tmp_path / "s.py"
    script.write_text("# %%\nx = 1\n\n# %% [markdown]\n# method 2 accuracy: 45%\n")
    assert ingest(script).text_cells == ["method 2 accuracy: 45%\n"]


def test_nbconvert_scripts_keep_their_markdown_as_text(tmp_path):
    """`jupyter nbconvert --to script` writes markdown cells as comments two blank lines after the code before
    them; the report answers are read from there. A comment right under code stays code."""
    script = tmp_path / "export.py"
    script.write_text(
        "#!/usr/bin/env python\n# coding: utf-8\n\n# # Problem Set 7\n\n# In[1]:\n\n\nimport os\n"
        "# a comment of the code\n\n\n# ### 7.1.5 Report\n# \n# method 1 accuracy: 0.31\n\n# In[2]:\n\n\nY = 2\n"
    )
    cells = read_cells(script, include_text=True)
    assert [(cell.kind, cell.source.strip()) for cell in cells] == [
        ("text", "# Problem Set 7"),
        ("code", "import os\n# a comment of the code"),
        ("text", "### 7.1.5 Report\n\nmethod 1 accuracy: 0.31"),
        ("code", "Y = 2"),
    ]
    lines = script.read_text().split("\n")
    assert [lines[cell.file_line - 1] for cell in cells] == ["# # Problem Set 7", "", "# ### 7.1.5 Report", ""]
    assert ingest(script).text_cells[1].splitlines()[-1] == "method 1 accuracy: 0.31"


def test_cells_are_numbered_as_the_notebook_shows_them_with_their_execution_counts(tmp_path):
    """Jupyter's table of contents and Colab count every cell, markdown and raw ones too; `In [N]` is the count
    of the cell's last run, absent for a cell never run."""
    path = _write_notebook(
        tmp_path / "ps7.ipynb",
        [
            new_markdown_cell("# Problem Set 7"),
            new_code_cell("import torch", execution_count=3),
            new_raw_cell("raw text"),
            new_markdown_cell("## 7.1.1 Encoder"),
            new_code_cell("def f():\n    return 1"),
            new_code_cell("x = f()", execution_count=12),
        ],
    )
    cells = read_cells(path, include_text=True)
    assert [(cell.kind, cell.position, cell.execution_count) for cell in cells] == [
        ("text", 1, None), ("code", 2, 3), ("text", 4, None), ("code", 5, None), ("code", 6, 12),
    ]
    assert [(cell.position, cell.source) for cell in read_cells(path)] == [
        (2, "import torch"), (5, "def f():\n    return 1"), (6, "x = f()"),
    ]


def test_a_damaged_execution_count_is_left_out(tmp_path):
    raw = {
        "nbformat": 4, "nbformat_minor": 2, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": count, "outputs": [], "source": "x = 1"}
                  for count in (True, -1, 0, "7", 5)],
    }
    path = tmp_path / "counts.ipynb"
    path.write_text(json.dumps(raw))
    assert [cell.execution_count for cell in read_cells(path)] == [None, None, None, None, 5]


def test_nbconvert_exports_count_cells_as_their_notebook_did(tmp_path):
    """`jupyter nbconvert --to script` keeps each code cell's `In [N]` and writes each markdown cell as a comment
    block, one blank line between two of them: cells are numbered as in the notebook the file came from (two
    markdown cells, code `In [4]`, a never-run empty code cell, a markdown cell, code `In [9]`)."""
    script = tmp_path / "export.py"
    script.write_text(
        "#!/usr/bin/env python\n# coding: utf-8\n\n# # Problem Set 7\n\n# ## 7.1 Autoencoders\n# \n# text\n\n"
        "# In[4]:\n\n\nimport os\n\n\n# In[ ]:\n\n\n\n\n\n# ### 7.1.5 Report\n\n# In[9]:\n\n\nY = 2\n"
    )
    cells = read_cells(script, include_text=True)
    assert [(cell.kind, cell.position, cell.execution_count, cell.source.strip()) for cell in cells] == [
        ("text", 1, None, "# Problem Set 7"),
        ("text", 2, None, "## 7.1 Autoencoders\n\ntext"),
        ("code", 3, 4, "import os"),
        ("code", 4, None, ""),
        ("text", 5, None, "### 7.1.5 Report"),
        ("code", 6, 9, "Y = 2"),
    ]


def test_a_notebook_with_a_number_too_long_for_int_is_refused_as_damaged(tmp_path):
    path = _write_notebook(tmp_path / "huge.ipynb", [new_code_cell("x = 1", execution_count=1)])
    path.write_text(path.read_text().replace('"execution_count": 1', f'"execution_count": {"9" * 5000}'))
    with pytest.raises(IngestError, match=r"huge\.ipynb is a damaged notebook .*digits"):
        read_cells(path)


def test_an_nbconvert_marker_with_a_huge_count_is_still_a_cell_without_a_count(tmp_path):
    script = tmp_path / "export.py"
    script.write_text(f"# In[{'9' * 5000}]:\n\n\nx = 1\n\n\n# In[ 2 ]:\n\n\ny = 2\n")
    cells = read_cells(script)
    assert [(cell.position, cell.execution_count, cell.source.strip()) for cell in cells] == [
        (1, None, "x = 1"), (2, 2, "y = 2"),
    ]


def test_percent_format_cells_are_numbered_with_their_markdown(tmp_path):
    script = tmp_path / "jupytext.py"
    script.write_text(
        "# ---\n# jupyter:\n#   kernelspec: {}\n# ---\n\n# %% [markdown]\n# # Title\n\n# %%\nimport torch\n\n"
        "# %% [markdown]\n# explanation\n\n# %%\nx = 1\n"
    )
    cells = read_cells(script, include_text=True)
    assert [(cell.kind, cell.position, cell.execution_count) for cell in cells] == [
        ("text", 1, None), ("code", 2, None), ("text", 3, None), ("code", 4, None),
    ]
