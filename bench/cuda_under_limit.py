"""Check: CUDA starts and a ResNet50 trains a step under the worker's memory limit of a CUDA profile.

The worker's limit is RLIMIT_DATA (private writable memory), which a CUDA context's reservations and device
mappings do not count; this runs what a GPU grade's worker does first, under the limit `stl10-gpu` gives it,
and prints the private memory it took (VmData, the quantity the limit bounds), so a failure shows before a
grade and the limit's headroom is measured. Exit status 1 when CUDA is missing or fails under the limit.

Run: .venv/bin/python bench/cuda_under_limit.py (bench/gpu.sh runs it first)
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder.profiles.profile import load_profile  # noqa: E402
from autograder.profiles.timing import worker_limits  # noqa: E402


def private_memory_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> int:
    limit = worker_limits(load_profile("stl10-gpu")).memory_bytes
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    import torch
    import torchvision

    if not torch.cuda.is_available():
        print(f"CUDA is not available under a private-memory limit of {limit} bytes")
        return 1
    model = torchvision.models.resnet50().cuda()
    images = torch.rand(256, 3, 64, 64, device="cuda")
    loss = model(images).square().mean()
    loss.backward()
    torch.cuda.synchronize()
    print(
        f"CUDA under the worker's limit of {limit / 2**30:.0f} GiB: ResNet50 step on {torch.cuda.get_device_name(0)}; "
        f"private memory {private_memory_gib():.2f} GiB, GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
