#!/usr/bin/env bash
# Prepare .gpu/ (ignored by git) for scripts/gpu/h100.sh, on a machine with network access:
#   .gpu/llama.cpp.tgz  the llama.cpp tree of the llama-cpp-python sdist (PyPI), without its
#                       build/, models/, media/ and docs/ folders (about 12 MB)
#   .gpu/gguf-*.whl     the gguf package, for the model generator
#   .gpu/lmbench        a release build of this repository (x86-64 Linux)
# env: LLAMA_CPP_PY_VERSION (default 0.3.36), LMBENCH_CACHE_DIR (default ~/.cache/lmbench),
#      LMBENCH_BIN (use this lmbench binary instead of building one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"
CACHE="${LMBENCH_CACHE_DIR:-$HOME/.cache/lmbench}"
mkdir -p "$ROOT/.gpu"
if [ ! -s "$ROOT/.gpu/llama.cpp.tgz" ]; then
  WORK="$(mktemp -d)"
  SDIST="$(ls "$CACHE"/llama-server/build-"$VER"/dl/llama_cpp_python-"$VER".tar.gz 2>/dev/null || true)"
  if [ -z "$SDIST" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VER" -d "$WORK"
    SDIST="$WORK/llama_cpp_python-$VER.tar.gz"
  fi
  tar xzf "$SDIST" -C "$WORK"
  tar czf "$ROOT/.gpu/llama.cpp.tgz" -C "$WORK/llama_cpp_python-$VER/vendor" \
    --exclude=llama.cpp/build --exclude=llama.cpp/models --exclude=llama.cpp/media \
    --exclude=llama.cpp/docs --exclude=llama.cpp/.git llama.cpp
  rm -rf "$WORK"
fi
ls "$ROOT"/.gpu/gguf-*.whl >/dev/null 2>&1 ||
  python3 -m pip download -q --no-deps --only-binary=:all: gguf -d "$ROOT/.gpu"
if [ -n "${LMBENCH_BIN:-}" ]; then
  cp "$LMBENCH_BIN" "$ROOT/.gpu/lmbench"
else
  (cd "$ROOT" && cargo build --release --bin lmbench)
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/lmbench" "$ROOT/.gpu/lmbench"
fi
ls -la "$ROOT/.gpu"
