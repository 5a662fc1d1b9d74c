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
source "$(dirname "${BASH_SOURCE[0]}")/_launch-common.sh"
PORT="${LMBENCH_PORT:-30080}"
MODEL="meta-llama/Llama-3.1-8B-Instruct"
serves_only "$MODEL"
needs_python_modules sglang 'pip install "sglang[all]"' sglang.launch_server
exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --context-length 32000 \
  --host 0.0.0.0 --port "$PORT" "$@"
