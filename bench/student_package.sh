#!/usr/bin/env bash
# What a student's first use costs, from the package registry: build the student package, install it with its
# dependencies into a fresh virtual environment (torch and torchvision from PS7_TORCH_INDEX, the CPU build by
# default; empty means the default index), then time the first `check` of the reference (it prepares the
# public profile) and a second, warm one, from a folder outside the checkout. Results go to BENCHMARKS.md.
#
#   bash bench/student_package.sh            # PYTHON (python3) makes the venv; WORK (a new temporary folder)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILDER=${BUILDER:-$ROOT/.venv/bin/python}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ps7-student-bench.XXXXXX")}
TORCH_INDEX=${PS7_TORCH_INDEX-https://download.pytorch.org/whl/cpu}

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

"$BUILDER" -m autograder student-package --out "$WORK/handout"
cp "$ROOT/reference/ps7_solution.ipynb" "$WORK/handout/solution.ipynb"

start=$(now)
"$PYTHON" -m venv "$WORK/venv"
if [ -n "$TORCH_INDEX" ]; then
  "$WORK/venv/bin/python" -m pip install --quiet torch torchvision --index-url "$TORCH_INDEX"
fi
"$WORK/venv/bin/python" -m pip install --quiet "$WORK"/handout/*.whl
echo "install (fresh venv, from the registry): $(since "$start") s"

cd "$WORK/handout"
export PS7_CACHE="$WORK/cache" HF_HUB_OFFLINE=1
env -u PYTHONPATH "$WORK/venv/bin/python" -c "import autograder; print('autograder from', autograder.__file__)"
start=$(now)
env -u PYTHONPATH "$WORK/venv/bin/python" -m autograder check solution.ipynb | tail -n 3
echo "first check (prepares the public profile): $(since "$start") s"
start=$(now)
env -u PYTHONPATH "$WORK/venv/bin/python" -m autograder check solution.ipynb | tail -n 3
echo "warm check: $(since "$start") s"
start=$(now)
env -u PYTHONPATH "$WORK/venv/bin/python" -m autograder check ps7.ipynb | tail -n 3
echo "warm check of the template: $(since "$start") s"
echo "(work folder: $WORK)"
