#!/usr/bin/env bash
# Flat baseline: plain vLLM serving meta-llama/Llama-3.1-8B-Instruct (max context 32000) on
# port ${LMBENCH_PORT:-30080}, all interfaces (vLLM's default). Needs an NVIDIA GPU with room
# for an 8B model, `vllm` on PATH (pip install vllm), and HF_TOKEN with access to the gated
# Llama repository (or the weights already in the Hugging Face cache).
#
#   env: LMBENCH_PORT  port to listen on (default 30080)
#        HF_TOKEN      read by vLLM to download the weights
# Extra arguments are passed to `vllm serve`.
set -euo pipefail
PORT="${LMBENCH_PORT:-30080}"
if ! command -v vllm >/dev/null 2>&1; then
  echo "basic-vllm: vllm not found on PATH (pip install vllm)" >&2
  exit 127
fi
exec vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 32000 --port "$PORT" "$@"
