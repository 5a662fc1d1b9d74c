#!/usr/bin/env bash
# SGLang baseline for checking the set-up: one SGLang server serving
# meta-llama/Llama-3.1-8B-Instruct on one GPU with a 32000-token context (SGLang's radix prefix
# cache on, as by default), on port ${LMBENCH_PORT:-30080}.
# Needs `sglang` installed (pip install "sglang[all]"), one NVIDIA GPU, and HF_TOKEN with access
# to the gated Llama repository (or the weights already in the Hugging Face cache).
# lmbench runs it as `bash debug-llama8B.sh` in its own process group and stops the whole group
# afterwards; the server runs in the foreground (exec).
#
#   env: LMBENCH_PORT  port to listen on (default 30080)
#        HF_TOKEN      read by SGLang to download the weights
# Extra arguments are passed to the server.
set -euo pipefail
PORT="${LMBENCH_PORT:-30080}"
MODEL="meta-llama/Llama-3.1-8B-Instruct"
# The spec's modelURL is the name sent in every request; a different one would get 404s.
if [ -n "${LMBENCH_MODEL:-}" ] && [ "$LMBENCH_MODEL" != "$MODEL" ]; then
  echo "sglang/debug-llama8B.sh: serves $MODEL, but the spec's modelURL is $LMBENCH_MODEL" >&2
  exit 2
fi
if ! python3 -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("sglang.launch_server") else 1)' >/dev/null 2>&1; then
  echo "sglang/debug-llama8B.sh: python3 cannot import sglang (pip install \"sglang[all]\")" >&2
  exit 127
fi
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --context-length 32000 \
  --host 0.0.0.0 --port "$PORT" "$@"
