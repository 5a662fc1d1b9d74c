#!/usr/bin/env bash
# Install llama.cpp's `llama-server` (CPU build) from the llama.cpp tree vendored in the
# llama-cpp-python sdist on PyPI, into a cache outside the checkout, keyed by version.
# Idempotent: a cached binary is reused. Prints the binary's path on its last line.
#
#   env: LMBENCH_CACHE_DIR   cache root (default: $HOME/.cache/lmbench)
#        LLAMA_CPP_PY_VERSION  llama-cpp-python version to build from (default 0.3.36)
#        JOBS                 parallel compile jobs (default: nproc)
#
# Cold cost on a 2-core machine: about 8-17 minutes, almost all of it compiling.
set -euo pipefail
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"
CACHE="${LMBENCH_CACHE_DIR:-$HOME/.cache/lmbench}"
DEST="$CACHE/llama-server/$VER"
BIN="$DEST/llama-server"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q cmake >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q cmake >/dev/null; }
  else
    python3 -m pip install --user -q cmake
  fi
fi

WORK="$CACHE/llama-server/build-$VER"
mkdir -p "$WORK/dl"
SDIST="$WORK/dl/llama_cpp_python-$VER.tar.gz"
if [ ! -f "$SDIST" ]; then
  # Name the one package: `--no-binary :all:` would also build cmake and ninja from source.
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VER" -d "$WORK/dl"
fi
if [ ! -d "$WORK/llama.cpp" ]; then
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar xzf "$SDIST" -C "$WORK/src"
  mv "$WORK/src/llama_cpp_python-$VER/vendor/llama.cpp" "$WORK/llama.cpp"
  rm -rf "$WORK/src"
fi
cd "$WORK/llama.cpp"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE="${GGML_NATIVE:-OFF}" >"$WORK/configure.log" 2>&1 \
  || { tail -30 "$WORK/configure.log" >&2; exit 1; }
cmake --build build --target llama-server -j"${JOBS:-$(nproc)}" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$DEST"
cp build/bin/llama-server "$DEST/llama-server.tmp" && mv "$DEST/llama-server.tmp" "$BIN"
echo "$BIN"
