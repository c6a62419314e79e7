#!/usr/bin/env bash
# Scale-out shown honestly on a small machine (issue #22): the events path end to end
# (emit -> trigger -> sandboxed run -> its `runtime.automations.executed` stored) through
# tests/cluster.sh's cluster with N = 1, 2, 3 runtimes, each runtime process capped at
# $QUOTA_US µs of CPU per 100 ms (default 30000: 0.3 of a core) in its own cgroup v1 `cpu`
# group /sys/fs/cgroup/cpu/refract-rt-<i>, so the runtimes are the bottleneck and adding one
# adds capacity.
#
# For each N: a DSL automation on `bench.tick`, rate limits off (the gateway's and the
# workspace's `prismeai_ratelimit_disabled`), one warm-up batch; then $EVENTS events emitted
# through the balancer ($BATCH per request, $PARALLEL requests at a time) while the runtimes are
# frozen (cgroup v1 freezer /sys/fs/cgroup/freezer/refract-rt), so the emitter's speed does not
# cap theirs. From the thaw, two clocks: until the runtimes' consumer group has run and
# acknowledged every entry (what the runtimes sustain), and until every run's record is stored
# in PostgreSQL (end to end). `lost` is emitted minus stored (after $PATIENCE s with no
# progress). Also the CPU time per event of every process involved, from before the emit to the
# last record stored: the cluster's services, PostgreSQL and Redis, from /proc/<pid>/stat
# (exited children included). Prints a markdown table.
#
# Needs root (cgroups), what tests/cluster.sh needs, jq, bc, psql. The CPU figures count
# everything PostgreSQL and Redis do meanwhile: run it on a quiet machine.
#
#   bash tests/benches/cluster-scale.sh
#   EVENTS=2000 SCALE="1 2" bash tests/benches/cluster-scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
export REFRACT_TEST_DATABASE_URL="${REFRACT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
SCALE="${SCALE:-1 2 3}"
EVENTS="${EVENTS:-20000}"
BATCH="${BATCH:-100}"
PARALLEL="${PARALLEL:-4}"
QUOTA_US="${QUOTA_US:-30000}"
PATIENCE="${PATIENCE:-120}"
CGROUP=/sys/fs/cgroup/cpu
FREEZER=/sys/fs/cgroup/freezer/refract-rt
DB="$REFRACT_TEST_DATABASE_URL"
REDIS_URL="${REFRACT_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
[ -w "$CGROUP" ] || { echo "cgroup v1 cpu controller not writable at $CGROUP (run as root)" >&2; exit 1; }

cargo build --release -p refract-tests --bin refract-node
NODE_BIN="$CARGO_TARGET_DIR/release/refract-node"
WORK="$(mktemp -d)"
PID=""
stop_cluster() {
  # A frozen process cannot even die: thaw first.
  [ -d "$FREEZER" ] && echo THAWED >"$FREEZER/freezer.state"
  if [ -n "$PID" ]; then kill -INT "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  PID=""
  # A group can be removed once its processes are gone.
  for g in "$CGROUP"/refract-rt-*; do
    [ -d "$g" ] || continue
    for _ in $(seq 1 50); do rmdir "$g" 2>/dev/null && break; sleep 0.1; done
  done
  [ -d "$FREEZER" ] && for _ in $(seq 1 50); do rmdir "$FREEZER" 2>/dev/null && break; sleep 0.1; done
  return 0
}
# freeze STATE: FROZEN or THAWED, for every runtime at once; returns once it is so.
freeze() {
  echo "$1" >"$FREEZER/freezer.state"
  for _ in $(seq 1 100); do [ "$(cat "$FREEZER/freezer.state")" = "$1" ] && return 0; sleep 0.05; done
  echo "the runtimes did not become $1" >&2
  return 1
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

descendants() { # PID: every descendant's pid
  local c
  for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done
}
# cpu_ticks ROOT...: user+system clock ticks of each root and its live descendants, plus what the
# roots' exited (waited-for) children used; a process that exits between two readings is then
# counted in its parent's total, so the difference of two readings is the CPU spent between them.
cpu_ticks() {
  local total=0 root p u s cu cs
  for root in "$@"; do
    for p in "$root" $(descendants "$root"); do
      read -r u s cu cs < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13, $14, $15}') || continue
      [ -n "${u:-}" ] || continue
      total=$((total + u + s))
      [ "$p" = "$root" ] && total=$((total + cu + cs))
    done
  done
  echo "$total"
}
TCK=$(getconf CLK_TCK)
POSTGRES=$(pgrep -o -x postgres || pgrep -o postgres || true)
REDIS=$(pgrep -o redis-server || true)
[ -n "$POSTGRES" ] && [ -n "$REDIS" ] || echo "warning: PostgreSQL or Redis not found locally; their CPU is not counted" >&2

# stored: "<bench.tick events> <runs>" of the workspace in the cluster's schema, asked through
# one psql session per cluster (a connection per poll would cost PostgreSQL a backend each,
# which the CPU figure would count).
stored() {
  echo "SELECT count(*) FILTER (WHERE type = 'bench.tick'),
      count(*) FILTER (WHERE type = 'runtime.automations.executed')
    FROM \"$NS\".events WHERE workspace = '$REFRACT_WORKSPACE';" >&7
  local line
  read -r -t 30 line <&8 || { echo "no answer from psql" >&2; return 1; }
  echo "$line"
}
# ran: every partition's runtime consumer group has read up to the stream's last entry and has
# nothing pending, i.e. every event has been run (the runs' own records may not be stored yet).
ran() {
  local s last
  for s in $(redis-cli -u "$REDIS_URL" --scan --pattern "$NS*:events:*"); do
    last=$(redis-cli -u "$REDIS_URL" -3 --json XINFO STREAM "$s" | jq -r '."last-generated-id"')
    redis-cli -u "$REDIS_URL" -3 --json XINFO GROUPS "$s" \
      | jq -e --arg last "$last" 'map(select(.name == "runtime")) | .[0]
          | (."last-delivered-id" == $last and .pending == 0)' >/dev/null || return 1
  done
}
# unstored: what the history writers (consumer group `events`) have not yet stored: read but not
# acknowledged, and not yet read, over every partition.
unstored() {
  local s total=0 n
  for s in $(redis-cli -u "$REDIS_URL" --scan --pattern "$NS*:events:*"); do
    n=$(redis-cli -u "$REDIS_URL" -3 --json XINFO GROUPS "$s" \
      | jq '[.[] | select(.name == "events") | .pending + (.lag // 0)] | add // 0')
    total=$((total + n))
  done
  echo "$total"
}
# wait_runs TARGET [BASE [SINCE]]: until TARGET runs are stored or none was added for $PATIENCE
# s; prints the runs stored, and says on stderr when 99% of the runs past BASE were stored, in seconds
# since SINCE (a date +%s.%N; default now): a slow tail shows there.
wait_runs() {
  local runs last=-1 still=0 t0="${3:-$(date +%s.%N)}" now ninety_nine="" base="${2:-0}"
  while :; do
    runs=$(stored | cut -d' ' -f2)
    now=$(echo "$(date +%s.%N) - $t0" | bc -l)
    if [ -z "$ninety_nine" ] && [ $(((runs - base) * 100)) -ge $((($1 - base) * 99)) ]; then
      ninety_nine=$now
      printf '  99%% of the runs stored after %.2f s\n' "$ninety_nine" >&2
    fi
    [ "$runs" -ge "$1" ] && break
    if [ "$runs" = "$last" ]; then
      still=$((still + 1))
      [ "$still" -ge $((PATIENCE * 4)) ] && break
    else
      still=0
      last=$runs
    fi
    sleep 0.25
  done
  echo "$runs"
}

source tests/benches/common.sh
ROWS=()
BASE=""
echo "cluster scale-out: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $EVENTS events," \
  "each runtime capped at $QUOTA_US/100000 of a core"
for n in $SCALE; do
  echo "== $n runtime(s)"
  OUT="$WORK/cluster-$n.out"
  REFRACT_CLUSTER_RUNTIMES="$n" bash tests/cluster.sh >"$OUT" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do grep -qs '^Balancer:' "$OUT" && break; sleep 0.2; done
  API=$(awk '/^Balancer:/ {print $2}' "$OUT")
  NS=$(awk '/^Refract cluster/ {print $3}' "$OUT")
  [ -n "$API" ] || { cat "$OUT"; echo "the cluster did not start" >&2; exit 1; }

  # Each runtime process (`refract-node runtime --listen …`) into its own capped group.
  i=0
  for c in $(pgrep -P "$PID"); do
    [ "$(tr '\0' ' ' <"/proc/$c/cmdline" | cut -d' ' -f2)" = runtime ] || continue
    i=$((i + 1))
    g="$CGROUP/refract-rt-$i"
    mkdir -p "$g"
    echo 100000 >"$g/cpu.cfs_period_us"
    echo "$QUOTA_US" >"$g/cpu.cfs_quota_us"
    echo "$c" >"$g/cgroup.procs"
    mkdir -p "$FREEZER"
    echo "$c" >"$FREEZER/cgroup.procs"
  done
  [ "$i" = "$n" ] || { echo "found $i runtime processes, expected $n" >&2; exit 1; }

  # fds 7 and 8, unlike a coprocess's own, reach the subshells `stored` runs in.
  coproc PSQL { psql "$DB" -Atq -F ' ' 2>&1; }
  exec 7>&"${PSQL[1]}" 8<&"${PSQL[0]}"
  psql_pid=$PSQL_PID
  sign_up
  REFRACT_DATABASE_URL="$DB?schema=$NS" "$NODE_BIN" admin grant bench@example.com >/dev/null
  auth=(-H "authorization: Bearer $REFRACT_TOKEN" -H 'content-type: application/json')
  curl -fs -X PATCH "${auth[@]}" "$API/v2/workspaces/$REFRACT_WORKSPACE/security/secrets" \
    -d '{"prismeai_ratelimit_disabled":{"value":"true"}}' >/dev/null
  curl -fs "${auth[@]}" "$API/v2/workspaces/$REFRACT_WORKSPACE/automations" -d \
    '{"slug":"on-tick","name":"On tick","when":{"events":["bench.tick"]},"do":[{"set":{"name":"n","value":"{{payload.n}}"}}]}' >/dev/null
  jq -cn --argjson n "$BATCH" '{events: [range($n) | {type: "bench.tick", payload: {n: .}}]}' >"$WORK/batch.json"
  emit() { # REQUESTS
    seq "$1" | xargs -P "$PARALLEL" -I{} curl -fs -o /dev/null "${auth[@]}" \
      "$API/v2/workspaces/$REFRACT_WORKSPACE/events" --data-binary @"$WORK/batch.json"
  }

  # Warm-up: every runtime has learnt the automation and compiled the interpreter.
  emit "$PARALLEL"
  warm=$((PARALLEL * BATCH))
  [ "$(wait_runs "$warm")" -ge "$warm" ] || { echo "the warm-up's runs were not all stored" >&2; exit 1; }

  requests=$((EVENTS / BATCH))
  emitted=$((requests * BATCH))
  for g in "$CGROUP"/refract-rt-*; do cat "$g/cpu.stat" >"$WORK/$(basename "$g").before"; done
  cpu_before=$(cpu_ticks "$PID" $POSTGRES $REDIS)
  # The events wait in the streams while the runtimes are frozen, so how fast they can be emitted
  # does not cap how fast the runtimes run them: the clock starts when they are thawed.
  freeze FROZEN
  emit_start=$(date +%s.%N)
  emit "$requests"
  emit_done=$(date +%s.%N)
  if ran; then echo "warning: the events were run before the thaw: is the freezer working?" >&2; fi
  freeze THAWED
  start=$(date +%s.%N)
  # First the runtimes (faster than the history today), polled alone for a finer clock.
  until ran || (( $(date +%s) - ${start%.*} > 600 )); do sleep 0.05; done
  ran_s=$(echo "$(date +%s.%N) - $start" | bc -l)
  for g in "$CGROUP"/refract-rt-*; do cat "$g/cpu.stat" >"$WORK/$(basename "$g").ran"; done
  runs=$(wait_runs $((warm + emitted)) "$warm" "$start")
  end=$(date +%s.%N)
  cpu_after=$(cpu_ticks "$PID" $POSTGRES $REDIS)
  read -r ticks runs_now <<<"$(stored)"
  lost=$((warm + emitted - runs_now))
  lost_events=$((warm + emitted - ticks))
  seconds=$(echo "$end - $start" | bc -l)
  rate=$(printf '%.0f' "$(echo "$emitted / $seconds" | bc -l)")
  ran_rate=$(printf '%.0f' "$(echo "$emitted / $ran_s" | bc -l)")
  [ -z "$BASE" ] && BASE=$rate && RAN_BASE=$ran_rate
  cpu_us=$(printf '%.0f' "$(echo "($cpu_after - $cpu_before) * 1000000 / $TCK / $emitted" | bc -l)")
  throttled=""
  for g in "$CGROUP"/refract-rt-*; do
    name=$(basename "$g")
    p0=$(awk '/^nr_periods/ {print $2}' "$WORK/$name.before"); p1=$(awk '/^nr_periods/ {print $2}' "$WORK/$name.ran")
    t0=$(awk '/^nr_throttled/ {print $2}' "$WORK/$name.before"); t1=$(awk '/^nr_throttled/ {print $2}' "$WORK/$name.ran")
    throttled+="${name#refract-}: $(( (t1 - t0) * 100 / (p1 - p0 > 0 ? p1 - p0 : 1) ))% "
  done
  echo "  $emitted events emitted in $(printf '%.2f' "$(echo "$emit_done - $emit_start" | bc -l)") s (runtimes frozen); after the thaw," \
    "run after $(printf '%.2f' "$ran_s") s, runs stored after $(printf '%.2f' "$seconds") s: $rate events/s; stored $((ticks - warm)) events and" \
    "$((runs_now - warm)) runs; not yet stored by the history writers: $(unstored) entries;" \
    "periods throttled until the runtimes were done: ${throttled% }"
  exec 7>&- 8<&-
  kill "$psql_pid" 2>/dev/null || true
  wait "$psql_pid" 2>/dev/null || true
  ROWS+=("| $n | $rate | $(printf '%.2f' "$(echo "$rate / $BASE" | bc -l)") | $ran_rate | $(printf '%.2f' "$(echo "$ran_rate / $RAN_BASE" | bc -l)") | $lost runs, $lost_events events | $cpu_us µs |")
  stop_cluster
done

echo
echo "| runtimes (each $(echo "scale=2; $QUOTA_US / 100000" | bc) core) | events/s (runs stored) | ratio | events/s (run by the runtimes) | ratio | lost | CPU per event (all processes) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
