#!/usr/bin/env bash
# SGLang baseline for the open-source comparison: Qwen/Qwen3-32B on eight GPUs as four
# data-parallel replicas of tensor-parallel 2, behind SGLang's own router (cache-aware routing
# across the replicas), with a 28000-token context, on port ${LMBENCH_PORT:-30080}.
# Needs `sglang` and `sglang-router` installed (pip install "sglang[all]" sglang-router), eight
# NVIDIA GPUs, and HF_TOKEN if the weights are not in the Hugging Face cache yet.
# lmbench runs it as `bash comparison-baseline.sh` in its own process group and stops the
# whole group afterwards; the server runs in the foreground (exec).
#
#   env: LMBENCH_PORT  port to listen on (default 30080)
#        HF_TOKEN      read by SGLang to download the weights
# Extra arguments are passed to the launcher.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_launch-common.sh"
PORT="${LMBENCH_PORT:-30080}"
MODEL="Qwen/Qwen3-32B"
serves_only "$MODEL"
needs_python_modules "sglang and sglang_router" 'pip install "sglang[all]" sglang-router' \
  sglang.launch_server sglang_router.launch_server
exec python3 -m sglang_router.launch_server \
  --model-path "$MODEL" \
  --dp-size 4 --tp-size 2 \
  --context-length 28000 \
  --host 0.0.0.0 --port "$PORT" "$@"
