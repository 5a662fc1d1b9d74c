#!/usr/bin/env bash
# The GPU run of docs/gpu-h100.md, on a machine with one NVIDIA H100 (sm_90), CUDA's compiler,
# CMake and Python 3 with numpy and tokenizers, and no network. Run from the repository root:
#
#   scripts/gpu/h100.sh build   # llama.cpp with CUDA + the random-weight 8B model (~6 min)
#   scripts/gpu/h100.sh run     # lmbench run -c run-bench-gpu.yaml, results packed (~8 min)
#   scripts/gpu/h100.sh resume [SESSION]  # finish a session that hit the time bound
#   scripts/gpu/h100.sh all     # both
#   scripts/gpu/h100.sh build-resume [SESSION]  # both, resuming a session whose results were
#                               # carried in as .gpu/results.tgz (a new machine starts bare)
#
# Inputs, in the ignored folder .gpu/ (prepared on a machine with network by
# scripts/gpu/prepare.sh): llama.cpp.tgz (the llama.cpp tree of the llama-cpp-python sdist),
# gguf-*.whl, and lmbench (an x86-64 release build of this repository).
# Work folder: $LMBENCH_GPU_DIR (default /tmp/lmbench-gpu). Results: $OUT/gpu-results.tgz when
# OUT is set, else $LMBENCH_GPU_DIR/gpu-results.tgz.
set -uo pipefail
ROOT="$(pwd)"
GPU="${LMBENCH_GPU_DIR:-/tmp/lmbench-gpu}"
DEST="${OUT:-$GPU}"
T0=$(date +%s)
mkdir -p "$GPU" "$DEST"
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

build() {
  local srv="$GPU/llama.cpp/build/bin/llama-server"
  if [ ! -x "$srv" ]; then
    say "building llama-server with CUDA"
    tar xzf "$ROOT/.gpu/llama.cpp.tgz" -C "$GPU"
    # Flash attention kernels off: they triple the build time; the engine is the same for
    # both baselines.
    ( cd "$GPU/llama.cpp" &&
      cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DGGML_CUDA_FA=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DBUILD_SHARED_LIBS=OFF >"$GPU/cmake-configure.log" 2>&1 &&
      cmake --build build --target llama-server -j"$(nproc)" >"$GPU/cmake-build.log" 2>&1
    ) &
    local build_pid=$!
  fi
  if [ ! -s "$GPU/model/l8b.gguf" ]; then
    say "making the random-weight Llama-3.1-8B-shaped model"
    python3 -m pip install -q --no-index --no-deps --target "$GPU/site" "$ROOT"/.gpu/gguf-*.whl
    PYTHONPATH="$GPU/site" python3 "$ROOT/scripts/gpu/make-random-llama.py" "$GPU/model" l8b \
      4096 32 32 14336 32000 8192 f16 || { say "model generation failed"; return 1; }
  fi
  if [ -n "${build_pid:-}" ]; then
    wait "$build_pid" || { tail -20 "$GPU/cmake-build.log"; say "llama-server build failed"; return 1; }
  fi
  ls -la "$GPU/model" "$srv"
  say "build stage done"
}

run() {
  # $1: a session id to resume (its finished runs are kept, the rest run under the same id).
  local bin="$ROOT/.gpu/lmbench" resume=()
  [ -n "${1:-}" ] && resume=(--resume "$1")
  chmod +x "$bin"
  # Results of an earlier machine's run of this session, carried back in for `resume`.
  if [ -s "$ROOT/.gpu/results.tgz" ] && [ ! -d "$GPU/results" ]; then
    mkdir -p "$GPU/results" && tar xzf "$ROOT/.gpu/results.tgz" -C "$GPU/results"
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$GPU/gpu.txt"
  say "lmbench run -c run-bench-gpu.yaml ${resume[*]}"
  # A bound under the device's 10-minute call limit: lmbench takes SIGINT as Ctrl-C (the engine
  # is torn down, finished results stay, exit 130) and `resume` finishes the session.
  LMBENCH_NO_PROGRESS=1 timeout -s INT "${RUN_LIMIT:-540}" "$bin" run -c run-bench-gpu.yaml \
    --results-dir "$GPU/results" --ready-timeout 300 --request-timeout 600 ${resume[@]+"${resume[@]}"} \
    2>&1 | tee -a "$GPU/lmbench-run.log"
  local rc=${PIPESTATUS[0]}
  # timeout(1) reports 124 when it had to send the SIGINT: the session is unfinished.
  [ "$rc" = 124 ] && say "time bound reached: finish the session with: scripts/gpu/h100.sh resume"
  say "lmbench exited $rc"
  cp "$GPU/gpu.txt" "$GPU/lmbench-run.log" "$GPU/results/" 2>/dev/null
  tar czf "$DEST/gpu-results.tgz" -C "$GPU/results" .
  ls -la "$DEST"
  return "$rc"
}

# The session id of the newest result file, for `resume`.
last_session() {
  ls -t "$GPU"/results/*/*.json 2>/dev/null | grep -v _comparison | head -1 |
    xargs -r grep -o '"lmbench-session-id": *"[^"]*"' | head -1 | sed 's/.*: *"\(.*\)"/\1/'
}

case "${1:-all}" in
  build) build ;;
  run) run ;;
  resume) [ -s "$ROOT/.gpu/results.tgz" ] && [ ! -d "$GPU/results" ] &&
      mkdir -p "$GPU/results" && tar xzf "$ROOT/.gpu/results.tgz" -C "$GPU/results"
    run "${2:-$(last_session)}" ;;
  # One device call is bounded (10 minutes): the run gets what the build left of ~9.5 minutes.
  all) build && RUN_LIMIT="${RUN_LIMIT:-$(( 560 - ($(date +%s) - T0) ))}" run ;;
  build-resume) build && [ -s "$ROOT/.gpu/results.tgz" ] && mkdir -p "$GPU/results" &&
      tar xzf "$ROOT/.gpu/results.tgz" -C "$GPU/results" &&
      RUN_LIMIT="${RUN_LIMIT:-$(( 560 - ($(date +%s) - T0) ))}" run "${2:-$(last_session)}" ;;
  *) echo "usage: $0 build|run|all" >&2; exit 2 ;;
esac
