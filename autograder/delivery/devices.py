"""Which GPUs a process that runs grades may hand out, and handing them out one grade at a time.

A process that runs grades owns the devices it was given (`--gpus`, or those its node shows: `PS7_GPUS`, else
`CUDA_VISIBLE_DEVICES`, else `nvidia-smi -L`); each grade holds one device for its whole run, alone
(`CUDA_VISIBLE_DEVICES=<that device>`), and waits while every device is busy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence

GPU_ENVIRONMENT = "PS7_GPUS"  # a node's devices for grades, "0,1" (overrides what the node shows)


def detect_devices() -> list[str]:
    """The GPUs this process may hand out: PS7_GPUS, else CUDA_VISIBLE_DEVICES, else those `nvidia-smi -L`
    lists; none on a machine without GPUs."""
    for variable in (GPU_ENVIRONMENT, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(variable)
        if value is not None:
            return parse_devices(value)
    program = shutil.which("nvidia-smi")
    if program is None:
        return []
    try:
        listed = subprocess.run([program, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(index) for index, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU ")]


def parse_devices(text: str) -> list[str]:
    """ "0,1" -> ["0", "1"]; "" or "none" -> [] (no GPU: grades run on the CPU)."""
    if text.strip().lower() in ("", "none", "-1"):
        return []
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if len(set(devices)) != len(devices):
        raise ValueError(f"a device is listed twice in {text!r}")
    return devices


class DevicePool:
    """Hands each grade one device of its own for its whole run; `hold()` waits while all are taken.
    Without devices it hands out None at once (no limit, no CUDA_VISIBLE_DEVICES set)."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)
        self._free = list(self.devices)
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self) -> Iterator[str | None]:
        if not self.devices:
            yield None
            return
        with self._changed:
            self._changed.wait_for(lambda: bool(self._free))
            device = self._free.pop(0)
        try:
            yield device
        finally:
            with self._changed:
                self._free.append(device)
                self._changed.notify()


_node_pool: DevicePool | None = None
_node_pool_lock = threading.Lock()


def node_pool() -> DevicePool:
    """The device pool of this process (one per Dask worker process: it owns its node's GPUs)."""
    global _node_pool
    with _node_pool_lock:
        if _node_pool is None:
            _node_pool = DevicePool(detect_devices())
        return _node_pool
