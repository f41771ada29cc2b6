#!/usr/bin/env bash
# The GPU row of BENCHMARKS.md: one command on a machine with a CUDA GPU, under 10 minutes.
#   bash bench/gpu.sh            (PYTHON=path/to/python to choose the interpreter; it needs torch with CUDA)
# Prepares synthetic-full (real sizes, random weights) into $PS7_CACHE (default: a folder in /tmp), checks that
# torch sees the GPU and that CUDA starts under the worker's memory limit (bench/cuda_under_limit.py), then grades the reference with stl10-gpu's budgets (the notebook's: AE 100 epochs, probes
# 100, CLIP 3) on it, per phase (bench/real_sizes.py). The grade's own target: 5 minutes on one modern GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export PS7_CACHE="${PS7_CACHE:-/tmp/ps7-gpu-cache}" HF_HUB_OFFLINE=1
"$PYTHON" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)"
"$PYTHON" bench/cuda_under_limit.py
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true
time "$PYTHON" -m autograder prepare --profile synthetic-full
"$PYTHON" bench/real_sizes.py --profile synthetic-full --budgets stl10-gpu
