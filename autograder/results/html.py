"""`grade --html FILE`: one self-contained page with the test table and the run's figures, for a TA who
wants to see what a submission learned rather than read numbers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from autograder.results.figures import Figures
from autograder.results.gradescope import Results

_ENVIRONMENT = Environment(
    loader=PackageLoader("autograder.results", "templates"), autoescape=select_autoescape(["html", "j2"])
)


def render_html(
    results: Results, figures: Figures, *, title: str, profile: str, staff_notes: Sequence[str] = ()
) -> str:
    """The page; `staff_notes` (what the grader printed for the staff, e.g. an uncalibrated profile) come
    first, since the page is for the staff."""
    tests = results.tests
    return _ENVIRONMENT.get_template("report.html.j2").render(
        title=title,
        profile=profile,
        score=sum(test.score for test in tests),
        maximum=sum(test.max_score for test in tests),
        output="\n".join([*staff_notes, results.output]).strip(),
        tests=tests,
        figures=figures,
    )


def write_html(
    results: Results,
    figures: Figures,
    path: str | os.PathLike[str],
    *,
    title: str,
    profile: str,
    staff_notes: Sequence[str] = (),
) -> Path:
    """Write the page atomically without following a symbolic link: into a fresh, unpredictable file in the
    target's folder (`mkstemp`: created exclusively, never through a link planted there), then renamed over
    `path`, which replaces a link at `path` itself rather than the file it points to."""
    path = Path(path)
    page = render_html(results, figures, title=title, profile=profile, staff_notes=staff_notes).encode("utf-8")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # as an ordinary page; mkstemp makes it 0o600
            handle.write(page)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path

