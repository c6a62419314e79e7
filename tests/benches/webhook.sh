#!/usr/bin/env bash
# Webhook benchmark of the embedded platform (issue: the platform, end to end):
# release `refract serve` on loopback, the SDK's webhook-echo deployed, then `wrk` at
# concurrency 16 and 64 (closed loop), at about 1,000 req/s (latency under load), and the
# idle RSS of the process. Needs `wrk` (Debian: apt-get install wrk) and jq.
#
#   bash tests/benches/webhook.sh            # builds refract in release first
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
DURATION="${DURATION:-10s}"
PORT="${PORT:-3917}"
API="http://127.0.0.1:$PORT"

cargo build --release -p refract
BIN="$CARGO_TARGET_DIR/release/refract"
DATA="$(mktemp -d)"
REFRACT_DISABLE_RATE_LIMIT=true RUST_LOG=warn "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$DATA/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -fs "$API/sys/healthcheck" >/dev/null && break; sleep 0.1; done
sleep 2
echo "idle RSS after start: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"

curl -fs "$API/v2/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","firstName":"Bench"}' >/dev/null
export REFRACT_TOKEN=$(curl -fs "$API/v2/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery"}' | jq -r .token)
export REFRACT_WORKSPACE=$(curl -fs "$API/v2/workspaces" -H "authorization: Bearer $REFRACT_TOKEN" \
  -H 'content-type: application/json' -d '{"name":"Bench"}' | jq -r .id)
"$BIN" deploy guest-sdk/examples/webhook-echo --url "$API" >/dev/null
HOOK="$API/v2/workspaces/$REFRACT_WORKSPACE/webhooks/echo"
curl -fs -X POST "$HOOK" -H 'content-type: application/json' -d '{"warm":true}' >/dev/null
sleep 2
echo "idle RSS with a deployed automation: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"

LUA="$PWD/tests/benches/webhook.lua"
run() { # label, connections, pace in ms between a connection's requests (0 = closed loop)
  printf '%s: ' "$1"
  PACE_MS="$3" wrk -t2 -c"$2" -d"$DURATION" -s "$LUA" "$HOOK" | tail -n 1
}
run "concurrency 16" 16 0
run "concurrency 64" 64 0
# 16 connections, each sending one request every 16 ms: about 1,000 req/s offered.
run "about 1000 req/s (16 connections, 16 ms pace)" 16 16
echo "RSS after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"
# What is left once the queued events have been stored and the allocator has given memory back.
sleep 20
echo "RSS 20 s after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"
