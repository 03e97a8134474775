#!/usr/bin/env bash
# Issue 28's GPU rows in one device call, ~6 minutes on one H100/H200 (16 cores): a 2,000 x 3,000 page with every
# colorize default on (base preset), a chapter of such pages (pages/s end to end: PNG decode, colorize, PNG encode),
# and build-pairs end to end at 256 px. Prepared so that a session lent a device spends its minutes measuring.
#
# The device image has torch, torchvision, OpenCV, Pillow, typer and rich but not webdataset: first, here,
# `make device-wheels` (into .whl/, ignored by git), then one call of the device tool, naming .whl in carry:
#     bash bench/device.sh
# Outputs: $OUT/*.txt and the benchmarks' JSON (bench/out/ when OUT is unset). Each part has its own time limit, so a
# slow one cannot take the others' minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-bench/out/device}
# SMALL=1 DEVICE=cpu PY=.venv/bin/python bash bench/device.sh: the same script in seconds on a CPU (a check that it runs).
DEVICE=${DEVICE:-cuda}
if [ "${SMALL:-0}" = 1 ]; then
  COLORIZE="--presets tiny --pages 2 --batch 2 --repeats 1"; PAIRS="--images 32 --batch 8 --workers 1 --shard-workers 2"
else
  COLORIZE="--presets base --pages 48 --batch 8 --repeats 5"; PAIRS="--images 2048 --batch 256 --workers 8 --shard-workers 12"
fi
mkdir -p "$OUT"
{ date -u; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; $PY -c \
  "import torch, cv2, PIL; print('torch', torch.__version__, 'cv2', cv2.__version__, 'pillow', PIL.__version__)"; } \
  2>&1 | tee "$OUT/device.txt"
# Page latency (every default on) and a chapter of 48 pages at batch 8; base only (the method's model).
timeout 240 $PY bench/bench_colorize.py --device "$DEVICE" $COLORIZE 2>&1 | tee "$OUT/colorize.txt"
# build-pairs end to end at 256 px, next to its generator alone.
timeout 240 $PY bench/bench_build_pairs.py --device "$DEVICE" $PAIRS --sizes 256 2>&1 | tee "$OUT/build_pairs.txt"
cp bench/out/colorize.json bench/out/build_pairs.json "$OUT/" 2>/dev/null
echo "done: $OUT"
