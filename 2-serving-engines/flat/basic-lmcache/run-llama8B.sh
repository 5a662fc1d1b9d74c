#!/usr/bin/env bash
# Flat baseline: vLLM serving meta-llama/Llama-3.1-8B-Instruct (max context 32000) on port
# ${LMBENCH_PORT:-30080} with LMCache really enabled through vLLM's v1 KV connector, offloading
# KV chunks of 256 tokens to up to ${LMCACHE_CPU_GB:-60} GB of CPU memory. (LMBench's own copy
# of this script lost its `vllm serve` line, so that baseline never came up.) Needs an NVIDIA
# GPU, `vllm` and `lmcache` installed (pip install vllm lmcache), and HF_TOKEN with access to
# the gated Llama repository.
#
#   env: LMBENCH_PORT    port to listen on (default 30080)
#        LMCACHE_CPU_GB  LMCache's CPU cache size in GB (default 60)
#        HF_TOKEN        read by vLLM to download the weights
# Extra arguments are passed to `vllm serve`.
set -euo pipefail
PORT="${LMBENCH_PORT:-30080}"
if ! command -v vllm >/dev/null 2>&1; then
  echo "basic-lmcache: vllm not found on PATH (pip install vllm lmcache)" >&2
  exit 127
fi
export LMCACHE_CHUNK_SIZE=256
export LMCACHE_LOCAL_CPU=True
export LMCACHE_MAX_LOCAL_CPU_SIZE="${LMCACHE_CPU_GB:-60}"
# Older LMCache releases only load the v1 connector with this set; newer ones ignore it.
export LMCACHE_USE_EXPERIMENTAL=True
exec vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 32000 --port "$PORT" \
  --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}' "$@"
