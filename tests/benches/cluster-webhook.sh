#!/usr/bin/env bash
# Webhook benchmark of the local cluster (issue: scale-out): tests/cluster.sh's 2 gateways
# behind the round-robin balancer, 2 runtimes, 2 events and 1 workspaces instance on Redis,
# PostgreSQL and S3; the SDK's webhook-echo deployed; then `wrk` through the balancer at
# concurrency 16 and 64 (closed loop) and at about 1,000 req/s. Needs what tests/cluster.sh
# needs, plus `wrk` and jq. Compare with tests/benches/webhook.sh (embedded mode).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
DURATION="${DURATION:-10s}"

cargo build --release -p refract -p refract-tests --bin refract --bin refract-node
OUT="$(mktemp)"
bash tests/cluster.sh >"$OUT" 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 1 600); do grep -q '^Balancer:' "$OUT" && break; sleep 0.2; done
API=$(awk '/^Balancer:/ {print $2}' "$OUT")
[ -n "$API" ] || { cat "$OUT"; echo "the cluster did not start" >&2; exit 1; }
echo "cluster at $API"

source tests/benches/common.sh
deploy_echo "$CARGO_TARGET_DIR/release/refract"
# Both runtimes learn the automation from the broker; wait until the balancer's turns all answer.
for _ in $(seq 1 100); do
  ok=0
  for _ in 1 2 3 4; do curl -fs -o /dev/null -X POST "$HOOK" -H 'content-type: application/json' -d '{}' && ok=$((ok + 1)); done
  [ "$ok" = 4 ] && break
  sleep 0.2
done

load
