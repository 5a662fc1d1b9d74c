#!/usr/bin/env bash
# Flat baseline: gemma-270m.sh with llama-server's slot actions on and its host-memory prompt
# cache off, so that `cacheReset: llamacpp` empties every cache it has. llama-server answers
# `POST /slots/{id}?action=erase` only when started with `--slot-save-path` (nothing is saved
# there unless asked for); the erase empties the slots' KV cache but not the host-memory prompt
# cache (`--cache-ram`, 8 GiB by default), which would hand an erased prompt back to the slot.
#
#   env: SLOT_SAVE_PATH  folder for llama-server's slot files (default: a folder under TMPDIR)
#        and everything gemma-270m.sh reads.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SLOTS="${SLOT_SAVE_PATH:-${TMPDIR:-/tmp}/lmbench-llama-slots}"
mkdir -p "$SLOTS"
exec bash "$HERE/gemma-270m.sh" --slot-save-path "$SLOTS" --cache-ram 0 "$@"
