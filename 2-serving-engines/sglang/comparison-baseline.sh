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
PORT="${LMBENCH_PORT:-30080}"
MODEL="Qwen/Qwen3-32B"
# The spec's modelURL is the name sent in every request; a different one would get 404s.
if [ -n "${LMBENCH_MODEL:-}" ] && [ "$LMBENCH_MODEL" != "$MODEL" ]; then
  echo "sglang/comparison-baseline.sh: serves $MODEL, but the spec's modelURL is $LMBENCH_MODEL" >&2
  exit 2
fi
if ! python3 -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("sglang.launch_server") and u.find_spec("sglang_router.launch_server") else 1)' >/dev/null 2>&1; then
  echo "sglang/comparison-baseline.sh: python3 cannot import sglang and sglang_router (pip install \"sglang[all]\" sglang-router)" >&2
  exit 127
fi
exec python3 -m sglang_router.launch_server \
  --model-path "$MODEL" \
  --dp-size 4 --tp-size 2 \
  --context-length 28000 \
  --host 0.0.0.0 --port "$PORT" "$@"
