#!/usr/bin/env bash
# Regenerates the screenshots of the HTML report in docs/: a full grade (`--suite all`, training included) of the
# reference notebook and of buggy student submissions, each written with `--html`, then shot by headless
# Chromium (Debian: `apt-get install -y chromium`) at 1280x2000, the top of the page, which is what a TA sees
# first.
#
#   bench/report_screenshots.sh [NAME=NOTEBOOK ...]
#
# Without arguments: the reference and three one-bug submissions of the student corpus (the last one's CLIP logits
# are multiplied by the temperature: its retrieval grids show what the reference's find and it does not).
# Environment: PYTHON (default .venv/bin/python), CHROMIUM (default chromium), OUT (default docs), GRADE_ARGS (extra
# arguments of `grade`, e.g. --unsafe-same-user where bubblewrap is missing). Each grade takes a few minutes on two
# cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CHROMIUM=${CHROMIUM:-chromium}
OUT=${OUT:-docs}
command -v "$CHROMIUM" >/dev/null || { echo "report_screenshots: $CHROMIUM not found (apt-get install -y chromium)" >&2; exit 2; }
if [ $# -eq 0 ]; then
  set -- reference=reference/ps7_solution.ipynb \
    bug-train-ae-no-zero-grad=tests/corpus/students/bug_train_ae_no_zero_grad.ipynb \
    bug-decoder-no-sigmoid=tests/corpus/students/bug_decoder_no_sigmoid.ipynb \
    bug-clip-times-temperature=tests/corpus/students/bug_clip_times_temperature.ipynb
fi
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pair in "$@"; do
  name=${pair%%=*}
  notebook=${pair#*=}
  started=$(date +%s)
  # shellcheck disable=SC2086
  "$PYTHON" -m autograder grade "$notebook" --suite all --results "$work/$name.json" --html "$work/$name.html" \
    ${GRADE_ARGS:-} >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  graded=$(date +%s)
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2000 \
    --screenshot="$work/$name.png" "file://$work/$name.html" >"$work/$name.chromium.log" 2>&1
  # A palette of 256 colours keeps the screenshot small enough to commit; text and figures stay sharp.
  "$PYTHON" -c 'import sys; from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(256).save(sys.argv[2], optimize=True)' "$work/$name.png" "$OUT/report-$name.png"
  score=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["score"])' "$work/$name.json")
  echo "$name: $notebook scored $score; grade $((graded - started)) s, screenshot $OUT/report-$name.png ($(stat -c %s "$OUT/report-$name.png") bytes)"
done
