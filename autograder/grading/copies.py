"""Copies of the grader's own parts: a student class whose methods repeat a standard part's, statement for statement.

The standard Encoder and Decoder (`autograder.worker.standard`) are correct solutions of 7.1.1 and 7.1.2, and the
student package ships them for the public checks. A class that repeats every method of one of them (names,
docstrings and comments aside) is the grader's code, not the student's work, and earns nothing. The standard
ProjectionHead is not checked: one Linear layer and `F.normalize` is what almost everyone writes.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from autograder.ingest.extract import Submission


def _methods(node: ast.ClassDef) -> dict[str, str]:
    """Each method's body as a normalised AST dump (its docstring left out)."""
    methods = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            body = item.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]
            methods[item.name] = ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)
    return methods


def _class_node(source: str) -> ast.ClassDef | None:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    return next((node for node in tree.body if isinstance(node, ast.ClassDef)), None)


def copies_grader_class(submission: Submission, name: str, original: type) -> bool:
    """Whether the submission's class `name` repeats every method of the grader's class `original`."""
    definition = submission.definitions.get(name)
    student = _class_node(definition.source) if definition is not None and definition.kind == "class" else None
    grader = _class_node(inspect.getsource(original))
    if student is None or grader is None:
        return False
    theirs, ours = _methods(student), _methods(grader)
    return bool(ours) and all(theirs.get(method) == body for method, body in ours.items())


def refuse_copy(submission: Submission, name: str, original: type) -> None:
    """Fail the test when the submission's `name` repeats the grader's `original`: a copy earns nothing."""
    if copies_grader_class(submission, name, original):
        pytest.fail(
            f"your `{name}` is a copy of the grader's own `{original.__name__}` (autograder/worker/standard.py), "
            "not your work; it earns no points. Write the component yourself.",
            pytrace=False,
        )
