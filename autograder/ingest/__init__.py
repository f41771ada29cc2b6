"""Ingest of student submissions: trusted code that reads a notebook or .py file as text and never runs it.

Pipeline: `read_cells` (file -> code cells, outputs dropped) -> `preprocess_cells` (IPython magics,
shell lines and Colab-only code become `pass`, line numbers unchanged) -> `extract` (per-cell
`ast.parse`; imports, top-level functions/classes and literal constants, and every other top-level
statement, summarised in `Submission.diagnostics`). `ingest(path)` does all three. `load_plan` (in
`dependencies`) picks what the worker loads: the definitions, and the statements graded definitions use,
leaving out with a reason those that need the data, training or notebook state. `static` answers
questions about the source (loops in a function, literal keyword arguments of calls) without executing
anything.
"""

from autograder.ingest.dependencies import LoadPlan, load_plan
from autograder.ingest.extract import (
    Definition,
    ImportStmt,
    ParseLimits,
    Statement,
    Submission,
    extract,
    ingest,
    parse_cell,
)
from autograder.ingest.preprocess import DEFAULT_STEPS, CellContext, preprocess_cells
from autograder.ingest.reader import ACCEPTED_KINDS, CellRef, IngestError, SourceCell, read_cells
from autograder.ingest.static import function_has_python_loops, keyword_arguments_of_calls

__all__ = [
    "ACCEPTED_KINDS",
    "DEFAULT_STEPS",
    "CellContext",
    "CellRef",
    "Definition",
    "ImportStmt",
    "IngestError",
    "ParseLimits",
    "LoadPlan",
    "SourceCell",
    "Statement",
    "Submission",
    "extract",
    "function_has_python_loops",
    "ingest",
    "keyword_arguments_of_calls",
    "load_plan",
    "parse_cell",
    "preprocess_cells",
    "read_cells",
]
