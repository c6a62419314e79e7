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

source tests/benches/common.sh
deploy_echo "$BIN"
curl -fs -X POST "$HOOK" -H 'content-type: application/json' -d '{"warm":true}' >/dev/null
sleep 2
echo "idle RSS with a deployed automation: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"

load
echo "RSS after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"
# What is left once the queued events have been stored and the allocator has given memory back.
sleep 20
echo "RSS 20 s after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$PID/status)"
