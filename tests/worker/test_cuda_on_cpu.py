"""A notebook written for Colab's GPU runs on a grader without one: under `CudaOnCpu` every request for "cuda"
goes to the CPU, and computes what the same code written for the CPU computes. The whole path (a worker that
retries the failed part under the mode) is graded in the student corpus (`ok_colab_gpu_hard_coded`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.worker.cuda_on_cpu import CudaOnCpu, run_cuda_requests_on_cpu
from autograder.worker.errors import failed_for_want_of_a_gpu

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU the code asks for")


def _losses(device: str | torch.device, move_with_cuda: bool) -> list[float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4, device=device), nn.ReLU(), nn.Linear(4, 1))
    model = model.cuda() if move_with_cuda else model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    inputs = torch.linspace(-1, 1, 30).reshape(5, 6).to(device)
    targets = torch.ones(5, 1, device=device)
    if move_with_cuda:
        inputs = inputs.pin_memory()  # for the copies to the GPU
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_code_written_for_cuda_computes_on_the_cpu_what_cpu_code_computes():
    expected = _losses("cpu", move_with_cuda=False)
    with pytest.raises((RuntimeError, AssertionError)) as raised:
        _losses("cuda", move_with_cuda=True)
    assert failed_for_want_of_a_gpu(str(raised.value)), raised.value
    with CudaOnCpu():
        assert _losses("cuda", move_with_cuda=True) == expected
        assert _losses(torch.device("cuda:0"), move_with_cuda=False) == expected
        assert torch.zeros(2, device="cuda").device.type == "cpu"


def test_other_failures_are_not_retried_and_a_machine_with_cuda_is_left_alone(monkeypatch):
    assert not failed_for_want_of_a_gpu("RuntimeError: mat1 and mat2 shapes cannot be multiplied (5x6 and 4x1)")
    assert not failed_for_want_of_a_gpu(None)
    # A machine with a GPU cannot exist here: `is_available` answers as one would.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert run_cuda_requests_on_cpu() is None
