"""The template's last cell: it installs the student package from the course's link and runs the public checks on
the notebook itself, in a kernel whose Python has nothing but that package (Colab's path, as far as it runs here:
Colab's editor is replaced by the file Jupyter's server names, JPY_SESSION_NAME)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.delivery.student_package import CHECKS_URL_PLACEHOLDER, StudentPackageError, template_text
from autograder.notebook import ADVISORY

URL = "https://example.edu/eecs442/ps7_checks-0.1.0-py3-none-any.whl"


def check_cell(text: str) -> str:
    """The source of the template's last code cell."""
    return [cell for cell in nbformat.reads(text, as_version=4).cells if cell.cell_type == "code"][-1].source


def test_the_link_given_to_student_package_is_what_the_check_cell_installs():
    committed = (REPO_ROOT / TEMPLATE_NOTEBOOK).read_text()
    assert CHECKS_URL_PLACEHOLDER in check_cell(committed)
    linked = template_text(URL)
    assert f'PS7_CHECKS_URL = "{URL}"' in check_cell(linked)
    assert linked.replace(URL, CHECKS_URL_PLACEHOLDER) == committed  # nothing else changes
    with pytest.raises(StudentPackageError, match="without quotes"):
        template_text('https://example.edu/x.whl"; import os')


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the checkout that the sandbox user (when the grader is root) can reach."""
    folder = Path(tempfile.mkdtemp(prefix="ps7-notebook-check-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_check_cell_installs_the_checks_and_checks_its_own_notebook(outside, monkeypatch):
    handout = outside / "handout"
    argv = [sys.executable, "-m", "autograder", "student-package", "--out", str(handout)]
    wheel_name = "ps7_checks-0.1.0-py3-none-any.whl"
    built = subprocess.run([*argv, "--url", str(handout / wheel_name)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr

    # A fresh environment without the package; the heavy dependencies (and ipykernel) come from this one's
    # site-packages through a plain `.pth` path, as in test_student_package.
    venv = outside / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(site, "heavy-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bare = {"PATH": os.environ["PATH"]}
    absent = subprocess.run([str(python), "-c", "import autograder"], capture_output=True, env=bare, cwd=outside)
    assert absent.returncode != 0, "the fresh environment must not see this checkout's autograder"
    kernels = outside / "jupyter" / "kernels" / "ps7-student"
    kernels.mkdir(parents=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps(spec | {"display_name": "a student's Python"}))

    work = outside / "student"
    work.mkdir()
    solution = work / "solution.ipynb"
    solution.write_text((REPO_ROOT / REFERENCE_NOTEBOOK).read_text())
    cell = check_cell((handout / "ps7.ipynb").read_text())
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os"), nbformat.v4.new_code_cell(cell)])
    for name in ("PYTHONPATH", "PS7_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(outside / "jupyter"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(solution))  # what Jupyter's server tells a notebook's kernel
    monkeypatch.setenv("PS7_CACHE", str(outside / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = NotebookClient(
        notebook, timeout=1200, kernel_name="ps7-student", resources={"metadata": {"path": str(work)}}
    )
    client.execute()

    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert "Public tests: 5.1 / 5.1 points" in printed, printed[-3000:]
    assert ADVISORY in printed
    installed = subprocess.run(
        [str(python), "-c", "import autograder; print(autograder.__file__)"], capture_output=True, text=True, cwd=work
    )
    assert installed.stdout.strip().startswith(site), installed
