#!/usr/bin/env bash
# Flat baseline for reliability tests: lmbench's simulated engine under a shell that ignores
# SIGTERM, as a wedged engine would, so teardown must wait for its grace period and SIGKILL.
#   env: LMBENCH_BIN (set by lmbench), LMBENCH_PORT (default 30080)
set -euo pipefail
trap '' TERM
"${LMBENCH_BIN:?LMBENCH_BIN is set by lmbench}" sim --host 127.0.0.1 --port "${LMBENCH_PORT:-30080}" --mode fixed --ttft-ms 20 --itl-ms 5 &
while true; do wait || true; sleep 1; done
