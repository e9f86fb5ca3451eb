#!/usr/bin/env sh
# Production serve command without Docker (a GPU host with `pip install vllm==0.32.0`).
# Usage: MODEL_DIR=/srv/models/Qwen2.5-VL-7B-Instruct [HOST=127.0.0.1] [PORT=8000] [SERVED_NAME=qwen2.5-vl-7b] docker/vllm/serve.sh
# (SERVED_NAME defaults to the model folder's name; the gpu profile asks for qwen2.5-vl-7b).
# It listens on 127.0.0.1 only; set HOST=0.0.0.0 (and VLLM_API_KEY) for workers on other machines.
# Point the pipeline at it with stages.enrich_title.options.base_url: http://<host>:$PORT/v1 and
# options.model: $SERVED_NAME. Set VLLM_API_KEY here and the variable named by options.api_key_env there.
set -eu
: "${MODEL_DIR:?set MODEL_DIR to a local model directory}"
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
exec python -m vllm.entrypoints.openai.api_server \
  --model "$MODEL_DIR" \
  --served-model-name "${SERVED_NAME:-$(basename "$MODEL_DIR")}" \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --max-model-len "${MAX_MODEL_LEN:-8192}" \
  --limit-mm-per-prompt '{"image": 1}' \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.9}"
