"""The student package: built by `python -m autograder student-package`, it holds no solution, no hidden test and
no threshold, and once installed in a fresh virtual environment it runs the public checks from a folder outside
the checkout: 0 points with a reason for each check on the template, every public point on the reference.

Installing torch into a fresh environment takes minutes (that is `bench/student_package.sh`), so the fresh
environment here gets the wheel installed `--no-deps --no-index` and a `.pth` file naming this test
environment's site-packages for the heavy dependencies. A plain path in a `.pth` file is only appended to
`sys.path` (the `.pth` files in that folder, the editable install of this checkout among them, are not run), so
`autograder` is imported from the wheel, which the test checks.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import BEGIN, REPO_ROOT, SOURCE_FILE, provided_code
from autograder.cli import STUDENT_COMMANDS, build_parser
from autograder.delivery.student_package import (
    DISCLOSED,
    StudentPackageError,
    build_student_package,
    secret_lines,
    strip_hidden,
)
from autograder.grading.plugin import GradingPlugin
from autograder.profiles.profile import PUBLIC_PROFILE, load_profile

SUITES = REPO_ROOT / "autograder" / "suites"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `student-package --out` wrote, built by the command line as a TA runs it."""
    out = tmp_path_factory.mktemp("student-package")
    argv = [sys.executable, "-m", "autograder", "student-package", "--out", str(out)]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out


def wheel_files(package: Path) -> dict[str, bytes]:
    (wheel,) = package.glob("*.whl")
    with zipfile.ZipFile(wheel) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def hidden_tests() -> dict[str, str]:
    """Every test of the suites marked after_due_date (name -> docstring), read with a regular expression, not
    with the code under test."""
    found = {}
    pattern = re.compile(r'@pytest\.mark\.visibility\("after_due_date"\)\n(?:@.*\n)*def (test_\w+)\(.*\n\s+"""(.*?)"""')
    for path in SUITES.glob("test_*.py"):
        found.update(pattern.findall(path.read_text()))
    return found


def test_the_package_holds_no_solution_no_hidden_test_and_no_threshold(package):
    files = wheel_files(package)
    names = set(files)
    assert "autograder/assignment/ps7.py" not in names
    assert not [name for name in names if name.startswith(("autograder/delivery/", "autograder/profiles/calibrate"))]
    assert sorted(name for name in names if name.startswith("autograder/profiles/") and name.endswith(".json")) == [
        "autograder/profiles/public.json"
    ]
    assert "thresholds" not in json.loads(files["autograder/profiles/public.json"])
    texts = {name: data.decode() for name, data in files.items()}
    opening = [name for name, text in texts.items() if any(row.strip() == BEGIN for row in text.splitlines())]
    assert opening == [], f"files with a solution region: {opening}"

    secrets = secret_lines()
    assert "CLIP accuracy: 0.802" in secrets and len(secrets) > 40  # the reference's report and code are covered
    leaks = {
        line: where
        for line in secrets
        if (where := sorted(name for name, text in texts.items() if line in text and name not in DISCLOSED))
    }
    assert leaks == {}, f"solution lines in the package: {leaks}"

    hidden = hidden_tests()
    assert len(hidden) >= 10, f"the suites' hidden tests were not found: {hidden}"
    for name, title in hidden.items():
        carrying = [path for path, text in texts.items() if name in text or title.strip() in text]
        assert carrying == [], f"the hidden test {name} ({title}) is in {carrying}"
    notebook = (package / "ps7.ipynb").read_text()
    assert "method 1 accuracy: 0.320" not in notebook and "raise NotImplementedError" in notebook


def test_every_public_test_is_kept(package):
    """As many tests in each stripped file as the suite file has, less its hidden ones."""
    files = wheel_files(package)
    for path in SUITES.glob("test_*.py"):
        source = path.read_text()
        hidden = source.count('@pytest.mark.visibility("after_due_date")')
        expected = len(re.findall(r"^def test_", source, re.M)) - hidden
        shipped = files[f"autograder/suites/{path.name}"].decode()
        assert len(re.findall(r"^def test_", shipped, re.M)) == expected, path.name
        assert "after_due_date" not in shipped


def test_the_provided_code_ships_as_the_worker_loads_it(package):
    files = wheel_files(package)
    assert files["autograder/assignment/provided.py.txt"].decode() == provided_code() + "\n"
    assert SOURCE_FILE.name == "ps7.py"


def test_a_public_test_that_needs_the_reference_stops_the_build():
    source = (
        "import pytest\n\n\n"
        "def test_public(observe, reference):\n"
        "    assert observe('p').data == reference('p').data\n"
    )
    text, _ = strip_hidden(source, title="t")
    from autograder.delivery import student_package

    with pytest.raises(StudentPackageError, match="test_public` uses the reference solution"):
        student_package._refuse_reference_outputs({"autograder/suites/test_x.py": text})


def test_stripping_keeps_what_public_tests_reach_and_drops_what_only_hidden_ones_use():
    source = '''"""Module docstring naming the hidden test."""
import math
import torch
from helpers import shared, hidden_only

LIMIT = 3
SECRET = 0.77


def _helper(x):
    return math.sqrt(x) + LIMIT


@pytest.fixture
def fixture_for_hidden(profile):
    return SECRET + hidden_only()


@pytest.mark.visibility("after_due_date")
def test_hidden(fixture_for_hidden):
    """9.9 hidden: secret"""
    assert torch.ones(1) * fixture_for_hidden


def test_public(observe):
    # a comment that belongs to the public test
    assert _helper(shared(observe)) > 0
'''
    text, removed = strip_hidden(source, title="Public.")
    tree = ast.parse(text)
    assert ast.get_docstring(tree) == "Public."
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined == {"_helper", "test_public"}
    assert removed == {"test_hidden": "9.9 hidden: secret"}
    assert "LIMIT = 3" in text and "SECRET" not in text and "import torch" not in text
    assert "from helpers import shared\n" in text and "hidden_only" not in text
    assert "# a comment that belongs to the public test" in text


def test_a_module_marked_hidden_ships_no_test_and_its_marks_stay_with_public_tests():
    hidden_module = (
        'import pytest\n\npytestmark = pytest.mark.visibility("after_due_date")\n\n\ndef test_a():\n    """1 a"""\n'
    )
    text, removed = strip_hidden(hidden_module, title="Public.")
    assert removed == {"test_a": "1 a"} and "def test_a" not in text
    marked = 'import pytest\n\npytestmark = pytest.mark.timeout(5)\n\n\ndef test_b():\n    """1 b"""\n'
    text, removed = strip_hidden(marked, title="Public.")
    assert removed == {} and "pytestmark = pytest.mark.timeout(5)" in text and "def test_b" in text


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the checkout and outside pytest's temporary folder, whose permissions any pytest session
    starting on the machine resets to owner-only: the sandbox user (when the grader is root) must reach it."""
    folder = Path(tempfile.mkdtemp(prefix="ps7-student-package-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_installed_in_a_fresh_environment_it_checks_the_template_and_the_reference(package, outside):
    tmp_path = outside
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    (wheel,) = package.glob("*.whl")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(site, "heavy-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "student"  # outside the checkout: nothing of the repository is importable from here
    work.mkdir()
    (work / "ps7.ipynb").write_text((package / "ps7.ipynb").read_text())
    (work / "solution.ipynb").write_text((REPO_ROOT / REFERENCE_NOTEBOOK).read_text())
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PS7_PROFILE")}
    env |= {"PS7_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *argv], cwd=work, env=env, capture_output=True, text=True, timeout=900)

    where = run("-c", "import autograder; print(autograder.__file__)")
    assert where.stdout.strip().startswith(site), where
    help_text = run("-m", "autograder", "--help").stdout
    assert "check" in help_text
    assert not re.search(r"\b(grade|zip|batch|calibrate|template|student-package)\b", help_text), help_text

    grade_both = (
        "import json, sys\n"
        "from autograder.grading import grade\n"
        "from autograder.profiles.prepare import prepare\n"
        "from autograder.profiles.profile import load_profile\n"
        "prepare(load_profile('public'))\n"
        "for name in sys.argv[1:]:\n"
        "    results = grade(name, name + '.json', profile='public', suite='public')\n"
        "    json.dump([[t.name, t.score, t.max_score, t.output] for t in results.tests], open(name + '.tests', 'w'))\n"
    )
    done = run("-c", grade_both, "ps7.ipynb", "solution.ipynb")
    assert done.returncode == 0, done.stderr[-3000:]
    template = json.loads((work / "ps7.ipynb.tests").read_text())
    reference = json.loads((work / "solution.ipynb.tests").read_text())
    assert len(template) == len(reference) >= 20
    assert all(score == 0 for _, score, _, _ in template)
    no_reason = [name for name, _, _, output in template if not output.strip()]
    assert no_reason == [], f"failed checks without a message: {no_reason}"
    not_the_student = [name for name, _, _, output in template if "grader could not" in output]
    assert not_the_student == [], f"checks that failed for a reason of the grader's: {not_the_student}"
    assert all(score == maximum for _, score, maximum, _ in reference), reference
    assert sum(maximum for _, _, maximum, _ in reference) == pytest.approx(5.1)

    checked = run("-m", "autograder", "check", "ps7.ipynb")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert all(name.split(":")[0] in checked.stdout for name, _, _, _ in template[:3])


def test_template_notebook_in_the_package_is_the_committed_template(package):
    assert (package / "ps7.ipynb").read_text() == (REPO_ROOT / TEMPLATE_NOTEBOOK).read_text()


def test_the_public_profile_has_no_thresholds_and_no_calibration_warning():
    profile = load_profile(PUBLIC_PROFILE)
    assert profile.thresholds is None and profile.calibration_warning() is None
    assert profile.backbones["image"]["pretrain"] is None  # nothing to pretrain: it prepares in seconds
    with pytest.raises(ValueError, match="has no thresholds: it runs the public suite only"):
        GradingPlugin(None, "unread", profile=PUBLIC_PROFILE, suite="all")


def test_check_runs_on_the_public_profile_unless_told_otherwise():
    args = build_parser().parse_args(["check", "ps7.ipynb"])
    assert args.profile == PUBLIC_PROFILE
    with pytest.raises(SystemExit):
        build_parser(only=STUDENT_COMMANDS).parse_args(["zip"])


def test_two_builds_of_the_same_tree_are_byte_identical(package, tmp_path):
    again = build_student_package(tmp_path / "again")
    (first,) = package.glob("*.whl")
    assert again.wheel.name == first.name and again.wheel.read_bytes() == first.read_bytes()
