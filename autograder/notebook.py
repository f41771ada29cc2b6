"""`check_this_notebook()`: the public checks run from inside the notebook (the template's last cell), in Colab or
Jupyter.

It checks the notebook's own contents exactly as `python -m autograder check FILE` checks a file, in a process of
its own, so the kernel's variables, GPU and memory are left alone: in Colab the notebook as its editor holds it
(saved or not: the runtime has no copy of the file), elsewhere the file Jupyter (or VS Code) names, or the path
given. The results are advisory: the public tests only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ADVISORY = (
    "These are the public checks, and advisory: they cover 5.1 of the problem set's 10 points and say nothing about "
    "the hidden tests, which are graded after the deadline."
)
CHECK_SECONDS = 900  # a first check prepares the public profile; later ones take seconds


class NotebookNotFound(RuntimeError):
    """The kernel cannot tell which notebook it runs; the message says how to name it."""


def _colab_notebook() -> dict | None:
    """The notebook as Colab's editor holds it, or None outside Colab."""
    try:
        from google.colab import _message  # Colab's channel to its editor (what its own "download" uses)
    except ImportError:
        return None
    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=120)
    notebook = reply.get("ipynb") if isinstance(reply, dict) else None
    if not isinstance(notebook, dict):
        raise NotebookNotFound("Colab did not hand over this notebook's contents; run the cell again in a moment")
    return notebook


def _named_notebook() -> Path | None:
    """The file of this kernel's notebook as Jupyter's server (JPY_SESSION_NAME) or VS Code names it."""
    named = os.environ.get("JPY_SESSION_NAME")
    if not named:
        try:
            named = get_ipython().user_ns.get("__vsc_ipynb_file__")  # type: ignore[name-defined]  # noqa: F821
        except NameError:  # not in IPython
            named = None
    return Path(named) if named and Path(named).suffix == ".ipynb" and Path(named).is_file() else None


def this_notebook(folder: Path) -> Path:
    """This kernel's notebook as a file (in Colab, its contents written into `folder`)."""
    contents = _colab_notebook()
    if contents is not None:
        path = folder / "ps7.ipynb"
        path.write_text(json.dumps(contents))
        return path
    named = _named_notebook()
    if named is None:
        raise NotebookNotFound(
            "cannot tell which notebook this kernel runs; save it and name it: check_this_notebook('ps7.ipynb')"
        )
    return named


def check_this_notebook(path: str | os.PathLike[str] | None = None, only: str | None = None) -> None:
    """Run the public checks on this notebook (or on `path`) and print the table and the reason of every failed
    check; `only` keeps one component ("7.1.2") or part ("7.2")."""
    with tempfile.TemporaryDirectory(prefix="ps7-notebook-") as folder:
        target = Path(path) if path is not None else this_notebook(Path(folder))
        command = [sys.executable, "-m", "autograder", "check", str(target), *(["--only", only] if only else [])]
        # A kernel shows what this process prints, not what its children write to their inherited descriptors.
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_SECONDS, check=False)
    print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    if done.returncode == 0:
        print(f"\n{ADVISORY}")
    else:
        print(f"\nthe checks did not run to the end (exit status {done.returncode}): see above", file=sys.stderr)
