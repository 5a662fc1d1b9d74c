#!/usr/bin/env bash
# gpu-llama8b.sh with llama.cpp's prompt caching kept inside the slots only:
#   --cache-ram 0  no host-memory prompt cache. With this model shape (no grouped-query
#                  attention) one 3,000-token prompt's KV is about 1.7 GB; with the host cache
#                  on (llama.cpp's default, 8 GiB) the server copies such an entry out of the
#                  GPU after every request and evicts older ones, seen in docs/gpu-h100.md as
#                  ~1.3 s per request. A request still reuses the common prefix left in its slot.
# env: as gpu-llama8b.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LLAMA_EXTRA_ARGS="--cache-ram 0 ${LLAMA_EXTRA_ARGS:-}"
exec bash "$HERE/gpu-llama8b.sh" "$@"
