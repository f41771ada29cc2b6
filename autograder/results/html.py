"""`grade --html FILE`: one self-contained page with the test table and the run's figures, for a TA who
wants to see what a submission learned rather than read numbers."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from autograder.results.figures import Figures
from autograder.results.gradescope import Results

_ENVIRONMENT = Environment(
    loader=PackageLoader("autograder.results", "templates"), autoescape=select_autoescape(["html", "j2"])
)


def render_html(results: Results, figures: Figures, *, title: str, profile: str) -> str:
    tests = results.tests
    return _ENVIRONMENT.get_template("report.html.j2").render(
        title=title,
        profile=profile,
        score=sum(test.score for test in tests),
        maximum=sum(test.max_score for test in tests),
        output=results.output,
        tests=tests,
        figures=figures,
    )


def write_html(results: Results, figures: Figures, path: str | os.PathLike[str], *, title: str, profile: str) -> Path:
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(render_html(results, figures, title=title, profile=profile), encoding="utf-8")
    temporary.replace(path)
    return path
