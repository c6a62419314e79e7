#!/usr/bin/env bash
# The API contract, checked against a live `refract serve`:
#   1. GET /v2/openapi.json validates as OpenAPI 3.1 (openapi-spec-validator);
#   2. schemathesis sends every operation generated requests (valid and invalid), with a
#      personal access token, and fails on any 5xx, any response that does not match its
#      schema, any undocumented status code or content type.
# Python tools live in a venv under ~/.cache (kept across runs). Usage:
#   tests/contract/run.sh [REFRACT_BINARY]     (default: builds the dev binary)
# Env: MAX_EXAMPLES (default 25 per operation), PORT (default 3979).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/refract-target}"
VENV="${REFRACT_CONTRACT_VENV:-$HOME/.cache/refract-contract-venv}"
PORT="${PORT:-3979}"
API="http://127.0.0.1:$PORT"
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"

if ! [ -x "$VENV/bin/schemathesis" ] || ! [ -x "$VENV/bin/openapi-spec-validator" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r tests/contract/requirements.txt
fi

REFRACT="${1:-}"
if [ -z "$REFRACT" ]; then
  cargo build --quiet -p refract --bin refract
  REFRACT="$CARGO_TARGET_DIR/debug/refract"
fi

WORK="$(mktemp -d)"
REFRACT_DISABLE_RATE_LIMIT=true RUST_LOG=warn "$REFRACT" serve --data-dir "$WORK/data" \
  --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do curl -fs "$API/sys/healthcheck" >/dev/null && break; sleep 0.1; done

json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
post() { # PATH BODY [TOKEN]
  curl -fsS "$API$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"
}

# A user, a personal access token (a session would end at the generated POST /v2/logout), a
# workspace with a DSL automation answering a webhook, one of its versions and runs, a secret,
# an API key, an app instance and a dead letter, so path parameters name real objects.
post /v2/signup '{"email":"contract@example.com","password":"correct horse battery","firstName":"Contract"}' >/dev/null
SESSION=$(post /v2/login '{"email":"contract@example.com","password":"correct horse battery"}' | json token)
export REFRACT_CONTRACT_TOKEN=$(post /v2/user/accessTokens \
  "{\"name\":\"contract\",\"expiresAt\":\"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)\"}" "$SESSION" | json token)
export REFRACT_CONTRACT_WORKSPACE=$(post /v2/workspaces '{"name":"Contract"}' "$REFRACT_CONTRACT_TOKEN" | json id)
TOKEN="$REFRACT_CONTRACT_TOKEN"
WS="$REFRACT_CONTRACT_WORKSPACE"
call() { # METHOD PATH BODY
  curl -fsS -X "$1" "$API$2" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" -d "$3"
}
call POST "/v2/workspaces/$WS/automations" \
  '{"slug":"echo","name":"Echo","when":{"endpoint":true},"do":[],"output":{"ok":true}}' >/dev/null
# version 1 of echo, a run of it, a secret, an API key
call PATCH "/v2/workspaces/$WS/automations/echo" '{"output":{"ok":"yes"}}' >/dev/null
curl -fsS -X POST "$API/v2/workspaces/$WS/webhooks/echo" -d '{}' >/dev/null
call PATCH "/v2/workspaces/$WS/security/secrets" '{"apiToken":{"value":"s3cret"}}' >/dev/null
export REFRACT_CONTRACT_KEY=$(call POST "/v2/workspaces/$WS/security/apikeys" '{"name":"contract"}' | json id)
# an app published from another workspace, installed here as instance "echo"
SOURCE=$(call POST /v2/workspaces '{"name":"Source"}' | json id)
call POST "/v2/workspaces/$SOURCE/automations" \
  '{"slug":"hello","name":"Hello","when":{"endpoint":true},"do":[],"output":{"hi":true}}' >/dev/null
call POST /v2/apps "{\"workspaceId\":\"$SOURCE\",\"slug\":\"contract-app\",\"name\":\"Contract app\"}" >/dev/null
call POST "/v2/workspaces/$WS/apps" '{"appSlug":"contract-app","slug":"echo"}' >/dev/null
export REFRACT_CONTRACT_USER=$(curl -fsS "$API/v2/me" -H "authorization: Bearer $TOKEN" | json id)
for _ in $(seq 1 50); do # the run's record reaches the history within a batch window
  REFRACT_CONTRACT_RUN=$(curl -fsS "$API/v2/workspaces/$WS/runs" -H "authorization: Bearer $TOKEN" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]["runs"]; print(r[0]["runId"] if r else "")')
  [ -n "$REFRACT_CONTRACT_RUN" ] && break
  sleep 0.1
done
export REFRACT_CONTRACT_RUN
# A dead letter: an event-triggered automation that fails both attempts of its retry policy
# (its failed runs are in the run list too).
call POST "/v2/workspaces/$WS/automations" '{"slug":"broken","name":"Broken","when":{"events":["contract.broken"]},
  "retry":{"attempts":2,"backoff":{"initialMs":100}},"do":[{"emit":{"event":"not a valid type!"}}]}' >/dev/null
call POST "/v2/workspaces/$WS/events" '{"events":[{"type":"contract.broken","payload":{"n":1}}]}' >/dev/null
for _ in $(seq 1 100); do
  REFRACT_CONTRACT_DEADLETTER=$(curl -fsS "$API/v2/workspaces/$WS/deadletters" -H "authorization: Bearer $TOKEN" |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["result"]["deadLetters"]; print(d[0]["id"] if d else "")')
  [ -n "$REFRACT_CONTRACT_DEADLETTER" ] && break
  sleep 0.1
done
export REFRACT_CONTRACT_DEADLETTER

echo "== OpenAPI document"
curl -fsS "$API/v2/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"
python3 - "$WORK/openapi.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ops = sum(1 for item in doc["paths"].values() for m in item if m in
          ("get", "put", "post", "delete", "patch", "head", "options", "trace"))
print(f"OpenAPI {doc['openapi']}: {len(doc['paths'])} paths, {ops} operations")
PY

echo "== schemathesis ($MAX_EXAMPLES examples per operation)"
started=$SECONDS
"$VENV/bin/schemathesis" --config-file tests/contract/schemathesis.toml run "$WORK/openapi.json" \
  --url "$API" --max-examples "$MAX_EXAMPLES" --seed 1 \
  --report junit --report-dir "$WORK/report" "${@:2}"
echo "schemathesis took $((SECONDS - started)) s"
