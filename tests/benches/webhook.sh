#!/usr/bin/env bash
# Webhook benchmark of the embedded platform (issue: the platform, end to end):
# release `refract serve` on loopback, the SDK's webhook-echo deployed, then `oha` at
# concurrency 16 and 64 (closed loop), at a fixed 1,000 req/s (latency under load), and the
# idle RSS of the process. Needs `oha` (cargo install oha) and jq.
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

run() { # label, oha args...
  local label=$1; shift
  oha --no-tui --output-format json -z "$DURATION" -m POST -H 'content-type: application/json' -d '{"hello":"world"}' "$@" "$HOOK" >"$DATA/oha.json"
  jq -r --arg name "$label" '"\($name): \(.summary.requestsPerSec | floor) req/s, p50 \(.latencyPercentiles.p50 * 1000 | . * 100 | floor / 100) ms, p99 \(.latencyPercentiles.p99 * 1000 | . * 100 | floor / 100) ms, success \(.summary.successRate * 100)%, status \(.statusCodeDistribution)"' "$DATA/oha.json"
}
run "concurrency 16" -c 16
run "concurrency 64" -c 64
run "1000 req/s (c 16)" -c 16 -q 1000
echo "RSS after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"
