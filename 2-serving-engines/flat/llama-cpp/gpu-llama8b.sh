#!/usr/bin/env bash
# Flat baseline for a GPU machine: llama.cpp's llama-server built with CUDA, serving a
# random-weight model of Llama-3.1-8B's shape (f16, 16 GB), all layers on the GPU, as model
# "llama-8b-random" on http://127.0.0.1:${LMBENCH_PORT:-30080}. Prompt caching on (llama.cpp's
# default): a request reuses the KV of the longest common prefix left in its slot, and slots are
# picked by prompt similarity, so a user's next turn lands where its history already is.
# Both the binary and the model are made by scripts/gpu/h100.sh (build stage).
#
#   env: LMBENCH_PORT     port (default 30080)
#        LMBENCH_GPU_DIR  where the build stage put things (default /tmp/lmbench-gpu)
#        LLAMA_SERVER     llama-server binary (default $LMBENCH_GPU_DIR/llama.cpp/build/bin/llama-server)
#        MODEL_GGUF       model (default $LMBENCH_GPU_DIR/model/l8b.gguf)
#        NP               parallel slots (default 16); CTX total context (default 98304 =
#                         6144 tokens per slot; the shape has no grouped-query attention, so
#                         this is 48 GiB of f16 KV next to 16 GB of weights)
#        LLAMA_EXTRA_ARGS extra llama-server flags, split on whitespace
# Extra arguments to this script are passed to llama-server too.
set -euo pipefail
GPU_DIR="${LMBENCH_GPU_DIR:-/tmp/lmbench-gpu}"
BIN="${LLAMA_SERVER:-$GPU_DIR/llama.cpp/build/bin/llama-server}"
MODEL="${MODEL_GGUF:-$GPU_DIR/model/l8b.gguf}"
[ -x "$BIN" ] || { echo "gpu-llama8b: no llama-server at $BIN (run scripts/gpu/h100.sh build)" >&2; exit 1; }
[ -s "$MODEL" ] || { echo "gpu-llama8b: no model at $MODEL (run scripts/gpu/h100.sh build)" >&2; exit 1; }
read -r -a EXTRA <<<"${LLAMA_EXTRA_ARGS:-}"
echo "gpu-llama8b: $BIN -m $MODEL on 127.0.0.1:${LMBENCH_PORT:-30080} ${LLAMA_EXTRA_ARGS:-}" >&2
exec "$BIN" -m "$MODEL" --host 127.0.0.1 --port "${LMBENCH_PORT:-30080}" -ngl 99 \
  -np "${NP:-16}" -c "${CTX:-98304}" --metrics --no-webui --alias llama-8b-random \
  ${EXTRA[@]+"${EXTRA[@]}"} "$@"
