#!/usr/bin/env bash
# gpu-llama8b.sh with llama.cpp's prompt caching off: every request prefills its whole prompt.
#   --no-cache-prompt  no reuse of a common prefix left in the slot (llama-server's switch;
#                      a request body with "cache_prompt": true would override it, lmbench
#                      sends none)
#   --cache-ram 0      no host-memory prompt cache either
# env: as gpu-llama8b.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LLAMA_EXTRA_ARGS="--no-cache-prompt --cache-ram 0 ${LLAMA_EXTRA_ARGS:-}"
exec bash "$HERE/gpu-llama8b.sh" "$@"
