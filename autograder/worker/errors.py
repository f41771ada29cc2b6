"""How the worker words a failure of student code: the error in one line, and the student's own frames.

Shared by the server (definitions, probes) and by probes that re-raise with a hint, so it imports nothing of
either.
"""

from __future__ import annotations

import traceback

from autograder.worker.protocol import truncate

STUDENT_FILE_PREFIX = "<cell"  # the names student parts are compiled under (`ingest.reader.CellRef.filename`)
TRACEBACK_CHARS = 3000


def student_traceback(error: BaseException) -> str:
    """The frames of the student's own code (files named "<cell N>") and the error line, nothing of ours."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith(STUDENT_FILE_PREFIX)
    ]
    lines = traceback.format_list(frames) if frames else []
    lines += traceback.format_exception_only(type(error), error)
    text = "".join(lines).rstrip()
    return truncate(f"Traceback (your code):\n{text}" if frames else text, TRACEBACK_CHARS)


def describe_error(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"your code called sys.exit({error.code!r})"
    if type(error) is NotImplementedError:
        return "NotImplementedError: this part is not implemented yet (your code still raises NotImplementedError)"
    detail = str(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


# What torch raises when code asks for a GPU this machine lacks (CUDA builds without a driver, CPU builds).
_NO_GPU_ERRORS = (
    "Found no NVIDIA driver",
    "Torch not compiled with CUDA enabled",
    "No CUDA GPUs are available",
    "CUDA driver initialization failed",
    "Cannot access accelerator device when none is available",
)


def failed_for_want_of_a_gpu(error_text: str | None) -> bool:
    """Whether student code failed because it asked for a GPU: on Colab's it ran (`cuda_on_cpu`)."""
    return bool(error_text) and any(message in error_text for message in _NO_GPU_ERRORS)
