#!/usr/bin/env bash
# Flat baseline: the real Gemma-3-270M (base model, Q4_K_M GGUF) on llama.cpp's llama-server,
# CPU only, OpenAI-compatible on http://127.0.0.1:${LMBENCH_PORT:-30080}, served as model
# "${MODEL_ALIAS:-gemma-3-270m}". llama.cpp's prompt cache is on (its default), with a full-size
# sliding-window cache (`--swa-full`): Gemma 3 uses sliding-window attention, and without it a
# slot can reuse its cached prompt only when that whole prompt is a prefix of the new one. A
# slot picked for a shared system prompt (llama-server picks the idle slot with the longest
# common prefix) would then recompute everything, and whether a user's next turn finds its
# history cached would depend on whether another user took that slot in between.
#
#   env: LMBENCH_PORT      port to listen on (default 30080)
#        LMBENCH_ROOT      folder holding run-bench.yaml (default: this script's ../../..)
#        LLAMA_SERVER      llama-server binary (default: built or reused by
#                          scripts/install-llama-server.sh; a cold build takes 8-17 minutes)
#        GEMMA_GGUF        model file (default: fetched or reused by scripts/fetch-gemma.sh)
#        LMBENCH_CACHE_DIR cache for those two scripts (default ~/.cache/lmbench)
#        THREADS           llama-server -t (default 1: on a small box more threads spin on
#                          OpenMP barriers while the load generator runs)
#        NP                parallel slots (default 4); CTX total context (default 8192,
#                          so 2048 tokens per slot)
#        MODEL_ALIAS       model id in /v1/models (default gemma-3-270m)
#        LLAMA_EXTRA_ARGS  extra llama-server flags, split on whitespace
# Extra arguments to this script are passed to llama-server too.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${LMBENCH_ROOT:-$(cd "$HERE/../../.." && pwd)}"
PORT="${LMBENCH_PORT:-30080}"

if [ -z "${LLAMA_SERVER:-}" ]; then
  echo "gemma-270m: locating llama-server via scripts/install-llama-server.sh" >&2
  LLAMA_SERVER="$(bash "$ROOT/scripts/install-llama-server.sh" | tail -n 1)"
fi
if [ ! -x "$LLAMA_SERVER" ]; then
  echo "gemma-270m: llama-server not executable: $LLAMA_SERVER" >&2
  exit 1
fi
if [ -z "${GEMMA_GGUF:-}" ]; then
  echo "gemma-270m: locating the model via scripts/fetch-gemma.sh" >&2
  GEMMA_GGUF="$(bash "$ROOT/scripts/fetch-gemma.sh" | tail -n 1)"
fi
if [ ! -s "$GEMMA_GGUF" ]; then
  echo "gemma-270m: model file missing or empty: $GEMMA_GGUF" >&2
  exit 1
fi

read -r -a EXTRA <<<"${LLAMA_EXTRA_ARGS:-}"
echo "gemma-270m: $LLAMA_SERVER -m $GEMMA_GGUF on 127.0.0.1:$PORT" >&2
exec "$LLAMA_SERVER" -m "$GEMMA_GGUF" --host 127.0.0.1 --port "$PORT" \
  -t "${THREADS:-1}" -np "${NP:-4}" -c "${CTX:-8192}" --swa-full --metrics --no-webui \
  --alias "${MODEL_ALIAS:-gemma-3-270m}" ${EXTRA[@]+"${EXTRA[@]}"} "$@"
