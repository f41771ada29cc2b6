"""Command line: one sub-command per job; each handler lives next to the code it drives."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _template(args: argparse.Namespace) -> int:
    from autograder.assignment.build import find_drift, write_all

    if args.check:
        drifted = find_drift(args.root)
        for path in drifted:
            print(f"{path}: differs from what `python -m autograder template` builds; rebuild and commit it.",
                  file=sys.stderr)
        return 1 if drifted else 0
    for path in write_all(args.root):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    template = commands.add_parser(
        "template", help="build the reference notebook and the student template from the one source"
    )
    template.add_argument("--check", action="store_true", help="exit 1 if a committed notebook is out of date")
    template.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    template.set_defaults(handler=_template)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
