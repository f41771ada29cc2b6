"""The cache layout is importable without torch, and agrees with the data module it mirrors."""

import subprocess
import sys

from autograder.data import stl10
from autograder.profiles import layout


def test_the_stl10_folder_name_is_the_data_modules():
    assert layout.STL10_FOLDER == stl10.STL10_FOLDER


def test_starting_a_worker_needs_no_torch_in_the_grader():
    """`check` starts its worker before the grader imports torch, so that the two imports overlap: the modules
    that start it must not import torch themselves."""
    code = (
        "import sys; import autograder.worker.client, autograder.profiles.layout, autograder.grading.grade, "
        "autograder.results; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", "a module on the path that starts the worker imports torch"
