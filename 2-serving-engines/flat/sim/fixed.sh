#!/usr/bin/env bash
# Flat baseline: lmbench's own simulated OpenAI-compatible engine, `lmbench sim --mode fixed`
# (exactly SIM_TTFT_MS to the first token and SIM_ITL_MS between tokens, whatever the
# load), on http://127.0.0.1:${LMBENCH_PORT:-30080}. No GPU, no model files.
#
#   env: LMBENCH_BIN   the lmbench executable (required; lmbench sets it to itself)
#        LMBENCH_PORT  port to listen on (default 30080)
#        SIM_MODEL     served model id, passed as --model when set
#        SIM_TTFT_MS, SIM_ITL_MS, SIM_SEED  passed as --ttft-ms, --itl-ms, --seed when set
# Extra arguments are passed to `lmbench sim` (e.g. --set KEY=VALUE); do not repeat a flag
# set above.
set -euo pipefail
PORT="${LMBENCH_PORT:-30080}"
ARGS=(--host 127.0.0.1 --port "$PORT" --mode fixed)
if [ -n "${SIM_MODEL:-}" ]; then ARGS+=(--model "$SIM_MODEL"); fi
if [ -n "${SIM_TTFT_MS:-}" ]; then ARGS+=(--ttft-ms "$SIM_TTFT_MS"); fi
if [ -n "${SIM_ITL_MS:-}" ]; then ARGS+=(--itl-ms "$SIM_ITL_MS"); fi
if [ -n "${SIM_SEED:-}" ]; then ARGS+=(--seed "$SIM_SEED"); fi
exec "${LMBENCH_BIN:?LMBENCH_BIN must name the lmbench executable}" sim "${ARGS[@]}" "$@"
