#!/usr/bin/env bash
# The runtime with many tenants: 2,500 DSL automations over 50 workspaces (more than one store
# read returns), created through the API; then `refract serve` is restarted on the same data and
# the script reports how long it takes to answer again, its idle RSS with them, the same for an
# empty data folder, and that an event reaches every workspace's automations after the restart.
#
#   REFRACT_BIN=target/release/refract bash tests/benches/index-scale.sh
#
# Needs: curl, jq, a release build of refract (cargo build --release -p refract).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${REFRACT_BIN:-${CARGO_TARGET_DIR:-target}/release/refract}"
WORKSPACES="${WORKSPACES:-50}"
PER_WORKSPACE="${PER_WORKSPACE:-50}"
PORT="${PORT:-3917}"
API="http://127.0.0.1:$PORT"
DATA="$(mktemp -d)"
EMPTY="$(mktemp -d)"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DATA" "$EMPTY"' EXIT

# start DIR: starts refract serve on DIR (its pid in PID, in this shell: not called in a
# subshell); READY_MS: the ms until it answered /sys/readiness.
start() {
  local t0; t0=$(date +%s%N)
  REFRACT_DISABLE_RATE_LIMIT=true "$BIN" serve --data-dir "$1" --listen "127.0.0.1:$PORT" \
    >"$1/serve.log" 2>&1 &
  PID=$!
  until curl -fs "$API/sys/readiness" >/dev/null 2>&1; do sleep 0.02; done
  READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rss_mib() { sleep 5; echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$PID/status") / 1024 )); }

start "$EMPTY"; empty_ms=$READY_MS; empty_rss=$(rss_mib); stop

start "$DATA"
curl -fs "$API/v2/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","firstName":"Bench"}' >/dev/null
TOKEN=$(curl -fs "$API/v2/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery"}' | jq -r .token)
auth=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
workspaces=()
t0=$(date +%s)
for w in $(seq 1 "$WORKSPACES"); do
  ws=$(curl -fs "$API/v2/workspaces" "${auth[@]}" -d "{\"name\":\"Tenant $w\"}" | jq -r .id)
  workspaces+=("$ws")
  for n in $(seq 1 "$PER_WORKSPACE"); do
    echo "{\"slug\":\"on-tick-$n\",\"name\":\"On tick $n\",\"when\":{\"events\":[\"tick\"]},\"do\":[{\"set\":{\"name\":\"seen\",\"value\":true}}],\"output\":{\"n\":$n}}"
  done | xargs -d '\n' -P 8 -I{} curl -fs -o /dev/null "$API/v2/workspaces/$ws/automations" "${auth[@]}" -d {}
done
echo "created $((WORKSPACES * PER_WORKSPACE)) automations over $WORKSPACES workspaces in $(( $(date +%s) - t0 )) s"
stop

start "$DATA"; ms=$READY_MS; rss=$(rss_mib)
for ws in "${workspaces[@]}"; do
  curl -fs -o /dev/null "$API/v2/workspaces/$ws/events" "${auth[@]}" -d '{"events":[{"type":"tick","payload":{}}]}'
done
ran=0
for _ in $(seq 1 300); do
  ran=0
  for ws in "${workspaces[@]}"; do
    n=$(curl -fs "$API/v2/workspaces/$ws/runs?limit=200" "${auth[@]}" | jq '.result.runs | length')
    ran=$((ran + n))
  done
  [ "$ran" -ge $((WORKSPACES * PER_WORKSPACE)) ] && break
  sleep 1
done
loaded=$(sed 's/\x1b\[[0-9;]*m//g' "$DATA/serve.log" | grep -o 'automations=[0-9]*' | tail -1 || true)
echo "after a restart: ready in $ms ms ($loaded), idle RSS $rss MiB; empty data folder: ready in $empty_ms ms, idle RSS $empty_rss MiB"
echo "runs after one event per workspace: $ran of $((WORKSPACES * PER_WORKSPACE))"
stop
