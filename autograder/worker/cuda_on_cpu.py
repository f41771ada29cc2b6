"""A notebook written for Colab's GPU, graded where there is none: its requests for "cuda" run on the CPU.

The template's `DEVICE` falls back to the CPU, but students often write `torch.device("cuda")`, `.cuda()` or
`.to("cuda:0")` themselves. That code is correct on the GPU it was written for and fails on Gradescope's CPUs
("Found no NVIDIA driver"), which would cost points for where the grade runs, not for the work. In a worker
without CUDA, every torch function and tensor method called under `CudaOnCpu` is given the CPU wherever it
was given a CUDA device (a `TorchFunctionMode`, which sees the calls that `Module.to` and `Module.cuda` make
too). Where CUDA exists nothing changes. This runs inside the worker: it decides no verdict.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_CPU = torch.device("cpu")
# Tensor methods that need a GPU (or pinned memory for one) and mean "put it on the GPU": already there.
_ALREADY_ON_THE_DEVICE = {torch.Tensor.cuda, torch.Tensor.pin_memory}


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.device) and value.type == "cuda":
        return _CPU
    if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
        return "cpu"
    return value


class CudaOnCpu(TorchFunctionMode):
    """Every CUDA device given to a torch call becomes the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        if func in _ALREADY_ON_THE_DEVICE:
            return args[0]
        args = tuple(_on_cpu(value) for value in args)
        kwargs = {key: _on_cpu(value) for key, value in (kwargs or {}).items()}
        return func(*args, **kwargs)


def run_cuda_requests_on_cpu() -> CudaOnCpu | None:
    """Enter `CudaOnCpu` for the rest of this process (the mode, which the caller keeps), or None where CUDA
    exists. The worker enters it only after student code failed for want of a GPU, then runs that code again:
    each torch call pays a Python dispatch under the mode (about 5-10 % of a synthetic grade, BENCHMARKS.md),
    which the code that never asks for "cuda" is spared."""
    if torch.cuda.is_available():
        return None
    mode = CudaOnCpu()
    mode.__enter__()
    return mode
