#!/usr/bin/env bash
# Flat baseline: gemma-270m.sh (real Gemma-3-270M Q4_K_M on llama-server, CPU, port
# ${LMBENCH_PORT:-30080}) with llama.cpp's prompt caching turned off, as a no-KV-reuse
# reference point:
#   --no-cache-prompt  requests do not reuse the KV of a common prefix left in their slot
#                      (llama-server --help: "--cache-prompt, --no-cache-prompt  whether to
#                      enable prompt caching (default: enabled)"); a request that sends
#                      "cache_prompt": true itself still overrides this, lmbench does not.
#   --cache-ram 0      no host-memory prompt cache either ("set the maximum cache size in MiB
#                      (default: 8192, -1 - no limit, 0 - disable)").
#
#   env: everything gemma-270m.sh reads (LMBENCH_PORT, LMBENCH_ROOT, LLAMA_SERVER, GEMMA_GGUF,
#        LMBENCH_CACHE_DIR, THREADS, NP, CTX, MODEL_ALIAS, LLAMA_EXTRA_ARGS).
# Extra arguments are passed to llama-server.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LLAMA_EXTRA_ARGS="--no-cache-prompt --cache-ram 0 ${LLAMA_EXTRA_ARGS:-}"
exec bash "$HERE/gemma-270m.sh" "$@"
