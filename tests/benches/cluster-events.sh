#!/usr/bin/env bash
# Events end to end through the local cluster (issue: scale-out): emit -> trigger -> run -> ack.
# Starts tests/cluster.sh's cluster, creates a DSL automation listening to `bench.tick`, emits
# $EVENTS events through the balancer ($BATCH per request, the API's maximum; $PARALLEL requests
# at a time), and times until the runtimes' consumer group has read and acknowledged every entry
# of every partition (XINFO: read up to the last entry, none pending). RUNTIMES=1 runs the same
# load on a cluster with one runtime (the scale-out issue compares the two). Needs what
# tests/cluster.sh needs, plus jq, bc and redis-cli.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
EVENTS="${EVENTS:-20000}"
BATCH="${BATCH:-100}"
PARALLEL="${PARALLEL:-4}"
REDIS="${REFRACT_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

cargo build --release -p refract -p refract-tests --bin refract --bin refract-node
OUT="$(mktemp)"
WORK="$(mktemp -d)"
REFRACT_CLUSTER_RUNTIMES="${RUNTIMES:-2}" bash tests/cluster.sh >"$OUT" 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$OUT" "$WORK"' EXIT
for _ in $(seq 1 600); do grep -q '^Balancer:' "$OUT" && break; sleep 0.2; done
API=$(awk '/^Balancer:/ {print $2}' "$OUT")
NS=$(awk '/^Refract cluster/ {print $3}' "$OUT")
[ -n "$API" ] || { cat "$OUT"; echo "the cluster did not start" >&2; exit 1; }
echo "cluster $NS at $API, ${RUNTIMES:-2} runtime(s)"

source tests/benches/common.sh
sign_up
auth=(-H "authorization: Bearer $REFRACT_TOKEN" -H 'content-type: application/json')
curl -fs "${auth[@]}" "$API/v2/workspaces/$REFRACT_WORKSPACE/automations" -d \
  '{"slug":"on-tick","name":"On tick","when":{"events":["bench.tick"]},"do":[{"set":{"name":"n","value":"{{payload.n}}"}}]}' >/dev/null

# One request body of $BATCH events, sent $EVENTS / $BATCH times.
jq -cn --argjson n "$BATCH" '{events: [range($n) | {type: "bench.tick", payload: {n: .}}]}' >"$WORK/batch.json"
requests=$((EVENTS / BATCH))
streams=$(redis-cli -u "$REDIS" --scan --pattern "$NS*:events:*" | sort)

# Settled: on every partition, the runtime group has read up to the last entry and has
# nothing pending.
settled() {
  for s in $streams; do
    last=$(redis-cli -u "$REDIS" -3 --json XINFO STREAM "$s" | jq -r '."last-generated-id"')
    redis-cli -u "$REDIS" -3 --json XINFO GROUPS "$s" \
      | jq -e --arg last "$last" 'map(select(.name == "runtime")) | .[0]
          | (."last-delivered-id" == $last and .pending == 0)' >/dev/null || return 1
  done
}
until settled; do sleep 0.2; done

start=$(date +%s.%N)
seq "$requests" | xargs -P "$PARALLEL" -I{} curl -fs -o /dev/null "${auth[@]}" \
  "$API/v2/workspaces/$REFRACT_WORKSPACE/events" --data-binary @"$WORK/batch.json"
emitted=$(date +%s.%N)
until settled; do sleep 0.05; done
done_at=$(date +%s.%N)
echo "$((requests * BATCH)) events: emitted in $(echo "$emitted - $start" | bc) s," \
  "all run and acknowledged after $(echo "$done_at - $start" | bc) s:" \
  "$(echo "$requests * $BATCH / ($done_at - $start)" | bc) events/s end to end (target >= 20,000)"
