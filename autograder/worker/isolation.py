"""Whether student code can be kept apart from the grader, and the refusal when it cannot.

The worker runs as a dedicated sandbox user when the grader is root (`Worker(user="auto")`), and in namespaces
of its own wherever bubblewrap can build them (`autograder.worker.confinement`), root or not. With neither, it
runs as the grader's own user and can read the hidden tests, signal the grader, and rewrite any file the grader
writes, after the grade too. Commands whose result matters (`grade --suite all`, `batch`) refuse to run like
that unless told `--unsafe-same-user`.
"""

from __future__ import annotations

import os

from autograder.worker.confinement import unavailable_reason

UNSAFE_SAME_USER_FLAG = "--unsafe-same-user"


def separate_user_available() -> bool:
    """The worker will run as a sandbox user of its own (the grader is root and can create one)."""
    return os.geteuid() == 0


def same_user_refusal(command: str) -> str | None:
    """Why `command` will not run here, or None when it may: a sandbox user or namespaces keep the worker apart."""
    if separate_user_available():
        return None
    problem = unavailable_reason()
    if problem is None:
        return None
    return (
        f"refusing to run `{command}`: the grader is not root and the worker cannot have namespaces of its own "
        f"({problem}), so student code would run as your own user, able to read the hidden tests and labels, "
        "signal the grader, and rewrite its results files (also after grading ends). Install bubblewrap, or run it "
        "as root (as Gradescope, `make grade` and run_autograder do: student code then runs as an unprivileged "
        f"sandbox user), or pass {UNSAFE_SAME_USER_FLAG} to accept that risk for trusted notebooks."
    )
