#!/usr/bin/env bash
# The GPU figures of the project in one go, on one CUDA machine with torch and transformers installed:
#   training throughput and MFU of the bi-encoder (bench_train_gpu.py), then images/s and GPU-seconds per product
#   of the diffusers image-editing backend (bench_diffusers.py). Results go to $OUT (default ./gpu-results).
# Pure-Python packages the machine lacks (diffusers, importlib_metadata) can be given as wheels in ./.whl.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
timeout "${TRAIN_TIMEOUT:-150}" python3 bench/bench_train_gpu.py --out "$OUT/bench_train_gpu.json" 2>&1 | tail -n 25
timeout "${DIFFUSERS_TIMEOUT:-380}" python3 bench/bench_diffusers.py --out "$OUT/bench_diffusers.json" 2>&1 | tail -n 40
ls -la "$OUT"
