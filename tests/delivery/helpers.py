"""Building and unpacking the Gradescope zip the way Gradescope does (`unzip` restores the Unix modes)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from autograder.assignment.source import REPO_ROOT


def build_with_cli(out: Path, *options: str) -> Path:
    """`python -m autograder zip --out OUT ...`, as a TA runs it."""
    argv = [sys.executable, "-m", "autograder", "zip", "--out", str(out), *options]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and str(out) in done.stdout
    return out


def unpack(archive: Path, target: Path) -> Path:
    """Extract every entry and give it the mode stored in the entry, as `unzip` does on Gradescope."""
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            path = Path(opened.extract(info, target))
            os.chmod(path, (info.external_attr >> 16) & 0o777)
    return target
