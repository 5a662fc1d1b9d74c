#!/usr/bin/env bash
# Flat baseline for reliability tests: lmbench's simulated engine (fixed mode) that is killed
# with SIGKILL after ${DIE_AFTER_S:-3} seconds, as a crashing engine would be.
#   env: LMBENCH_BIN (set by lmbench), LMBENCH_PORT (default 30080), DIE_AFTER_S
set -euo pipefail
PORT="${LMBENCH_PORT:-30080}"
"${LMBENCH_BIN:?LMBENCH_BIN is set by lmbench}" sim --host 127.0.0.1 --port "$PORT" --mode fixed --ttft-ms 20 --itl-ms 5 &
SIM=$!
sleep "${DIE_AFTER_S:-3}"
kill -9 "$SIM"
echo "dies-after.sh: killed the engine after ${DIE_AFTER_S:-3}s" >&2
exit 1
