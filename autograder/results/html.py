"""`grade --html FILE`: one self-contained page with the test table and the run's figures, for a TA who
wants to see what a submission learned rather than read numbers."""

from __future__ import annotations

import os
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
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    page = render_html(results, figures, title=title, profile=profile, staff_notes=staff_notes)
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(path)
    return path
