#!/usr/bin/env bash
# Starts an NVIDIA Dynamo deployment described by one file of dynamo_configurations/: Dynamo's
# OpenAI-compatible frontend on port ${LMBENCH_PORT:-30080} and the configured number of vLLM
# workers, all in the foreground of this script (it returns only when one of them exits).
#
#   usage: bash launch.sh <config>      (a path, or a name under dynamo_configurations/)
#   env:   LMBENCH_PORT       the frontend's HTTP port (default 30080)
#          HF_TOKEN           read by the workers to download the weights
#          CUDA_VISIBLE_DEVICES  when set, workers take their GPUs from this list, in order
#          ETCD_ENDPOINTS, NATS_SERVER  where Dynamo's discovery and messaging run (defaults
#                             http://127.0.0.1:2379 and nats://127.0.0.1:4222)
#          LMBENCH_DRY_RUN=1  print the commands instead of running them (used by lmbench's tests)
#
# Needs `ai-dynamo[vllm]` installed for python3 (pip install "ai-dynamo[vllm]"), and etcd and
# NATS (with JetStream) reachable. When they are not running but the `etcd` and `nats-server`
# binaries are on PATH, this script starts them itself, as children that end with it.
# lmbench runs it in its own process group and stops the whole group afterwards, so nothing
# here is left running; run by hand, Ctrl-C or SIGTERM stops every child too.
set -euo pipefail
shopt -s inherit_errexit

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "dynamo/launch.sh: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: bash launch.sh <config> (a file of $here/dynamo_configurations/)"
config="$1"
if [ ! -f "$config" ] && [ -f "$here/dynamo_configurations/$config" ]; then
  config="$here/dynamo_configurations/$config"
fi
[ -f "$config" ] || die "config $1 not found (looked at $1 and $here/dynamo_configurations/$1)"

# The config is flat `key: value` YAML; read it without a YAML library so that this script
# works before any Python package is installed.
known_keys="model routerMode workers gpusPerWorker maxModelLen blockSize connector workerArgs"
while IFS= read -r line || [ -n "$line" ]; do
  [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
  key="${line%%:*}"
  [[ "$line" == *:* && "$key" =~ ^[A-Za-z]+$ ]] || die "$config: cannot read line '$line' (expected key: value)"
  [[ " $known_keys " == *" $key "* ]] || die "$config: unknown key '$key' (known: $known_keys)"
done <"$config"

# cfg KEY [DEFAULT]: the value of KEY, without a trailing comment or surrounding quotes.
cfg() {
  local v
  v="$(sed -n "s/^$1:[[:space:]]*//p" "$config" | head -n 1)"
  v="$(printf '%s' "$v" | sed -e 's/[[:space:]]\{1,\}#.*$//' -e 's/[[:space:]]*$//')"
  v="${v#\"}"; v="${v%\"}"
  if [ -z "$v" ]; then
    [ $# -ge 2 ] || die "$config: $1 is required"
    v="$2"
  fi
  printf '%s' "$v"
}
int_cfg() {
  local v
  v="$(cfg "$@")"
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "$config: $1 must be a positive integer, got '$v'"
  printf '%s' "$v"
}

model="$(cfg model)"
router="$(cfg routerMode round-robin)"
workers="$(int_cfg workers)"
gpus_per_worker="$(int_cfg gpusPerWorker 1)"
max_model_len="$(int_cfg maxModelLen)"
block_size="$(int_cfg blockSize 16)"
connector="$(cfg connector none)"
read -r -a worker_args <<<"$(cfg workerArgs ' ')"
case "$router" in round-robin|random|kv) ;; *) die "$config: routerMode must be round-robin, random or kv, got '$router'" ;; esac
# The spec's modelURL is the name sent in every request; a different one would get 404s.
if [ -n "${LMBENCH_MODEL:-}" ] && [ "$LMBENCH_MODEL" != "$model" ]; then
  die "$config serves $model, but the spec's modelURL is $LMBENCH_MODEL"
fi
port="${LMBENCH_PORT:-30080}"
dry="${LMBENCH_DRY_RUN:-0}"

# GPUs: the visible list when CUDA_VISIBLE_DEVICES is set, else 0..N-1.
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -r -a gpus <<<"$CUDA_VISIBLE_DEVICES"
else
  gpus=()
  for ((i = 0; i < workers * gpus_per_worker; i++)); do gpus+=("$i"); done
fi
[ "${#gpus[@]}" -ge $((workers * gpus_per_worker)) ] \
  || die "$config needs $((workers * gpus_per_worker)) GPUs ($workers workers x $gpus_per_worker), CUDA_VISIBLE_DEVICES lists ${#gpus[@]}"

pids=()
state=""
stop_children() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$state" ]; then wait 2>/dev/null; rm -rf "$state"; fi
}
trap stop_children EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# start NAME ENV... -- CMD...: run CMD in the background with ENV set (or print it when dry).
start() {
  local name="$1"; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  if [ "$dry" = 1 ]; then
    printf '%s:' "$name"; printf ' %q' "${envs[@]}" "$@"; printf '\n'
    return
  fi
  echo "dynamo/launch.sh: starting $name: $*" >&2
  env "${envs[@]}" "$@" &
  pids+=("$!")
}

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if [ "$dry" != 1 ]; then
  python3 -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("dynamo.frontend") and u.find_spec("dynamo.vllm") else 1)' 2>/dev/null \
    || { echo "dynamo/launch.sh: python3 cannot find dynamo.frontend and dynamo.vllm (pip install \"ai-dynamo[vllm]\")" >&2; exit 127; }
  # etcd (discovery) and NATS (messaging): use running ones, else start them here.
  etcd_url="${ETCD_ENDPOINTS:-http://127.0.0.1:2379}"
  etcd_hostport="${etcd_url#*://}"; etcd_hostport="${etcd_hostport%%/*}"
  if ! listening "${etcd_hostport%:*}" "${etcd_hostport##*:}"; then
    command -v etcd >/dev/null || die "etcd is not reachable at $etcd_url and no etcd binary is on PATH"
    state="$(mktemp -d)"
    start etcd -- etcd --data-dir "$state/etcd" --listen-client-urls "http://$etcd_hostport" \
      --advertise-client-urls "$etcd_url"
  fi
  nats_url="${NATS_SERVER:-nats://127.0.0.1:4222}"
  nats_hostport="${nats_url#*://}"; nats_hostport="${nats_hostport%%/*}"
  if ! listening "${nats_hostport%:*}" "${nats_hostport##*:}"; then
    command -v nats-server >/dev/null || die "NATS is not reachable at $nats_url and no nats-server binary is on PATH"
    start nats -- nats-server -js -a "${nats_hostport%:*}" -p "${nats_hostport##*:}"
  fi
  for _ in $(seq 1 50); do
    listening "${etcd_hostport%:*}" "${etcd_hostport##*:}" && listening "${nats_hostport%:*}" "${nats_hostport##*:}" && break
    sleep 0.2
  done
  export ETCD_ENDPOINTS="$etcd_url" NATS_SERVER="$nats_url"
fi

# KV events feed the KV router; the same hash seed in every process keeps block hashes equal.
export PYTHONHASHSEED=0
start frontend -- python3 -m dynamo.frontend --http-port "$port" --router-mode "$router"

for ((w = 0; w < workers; w++)); do
  devs="$(IFS=,; echo "${gpus[*]:$((w * gpus_per_worker)):$gpus_per_worker}")"
  args=(--model "$model" --max-model-len "$max_model_len" --block-size "$block_size"
    --tensor-parallel-size "$gpus_per_worker" --connector "$connector")
  if [ "$router" = kv ]; then
    # Each worker publishes its KV cache events on its own port.
    args+=(--kv-events-config "{\"publisher\":\"zmq\",\"topic\":\"kv-events\",\"endpoint\":\"tcp://*:$((20080 + w))\",\"enable_kv_cache_events\":true}")
  fi
  # Per-worker ports: system/metrics and NIXL's side channel must not collide on one host.
  start "worker$w" CUDA_VISIBLE_DEVICES="$devs" DYN_SYSTEM_PORT="$((8081 + w))" \
    VLLM_NIXL_SIDE_CHANNEL_PORT="$((20097 + w))" -- \
    python3 -m dynamo.vllm "${args[@]}" "${worker_args[@]}"
done

[ "$dry" = 1 ] && exit 0
# Serve until any child exits; then the EXIT trap stops the others and the status tells why.
set +e
wait -n
status=$?
echo "dynamo/launch.sh: a Dynamo process exited with status $status; stopping the others" >&2
exit "$status"
