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

# What the figures of a profile can and cannot tell a TA, shown above them.
PROFILE_NOTES = {
    "synthetic": (
        "Synthetic profile: the images are generated shapes (circles, bars, crosses, ...) in random colours on "
        "patterned backgrounds, and the grader trains for a few epochs on a CPU. The figures show whether a "
        "submission learns at all: reconstructions that keep the colours and layout of the originals, losses "
        "that fall, and a retrieval that ranks the queried shape and colour first. They cannot show how well it "
        "does on real photographs (STL-10, Flickr8k) or after the notebook's full training: judge that on the "
        "stl10 profile."
    ),
}


def render_html(
    results: Results, figures: Figures, *, title: str, profile: str, staff_notes: Sequence[str] = ()
) -> str:
    """The page: the tests that lost points (one line each, linked to their row), the pictures, then the curves,
    the summary and the table. `staff_notes` (what the grader printed for the staff, e.g. an uncalibrated
    profile) are shown at the top, since the page is for the staff."""
    tests = results.tests
    return _ENVIRONMENT.get_template("report.html.j2").render(
        title=title,
        profile=profile,
        profile_note=PROFILE_NOTES.get(profile, ""),
        score=sum(test.score for test in tests),
        maximum=sum(test.max_score for test in tests),
        passed=sum(test.score >= test.max_score for test in tests),
        lost=[(row, test) for row, test in enumerate(tests, start=1) if test.score < test.max_score],
        staff_notes=[note for note in staff_notes if note.strip()],
        output=results.output.strip(),
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

