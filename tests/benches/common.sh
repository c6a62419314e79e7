# Shared by the benchmarks of a running platform (sourced): a user, a workspace and the SDK's
# webhook-echo deployed on the platform at $API, then the three wrk runs against it.

# sign_up: a user and a workspace on the platform at $API; sets REFRACT_TOKEN and
# REFRACT_WORKSPACE.
sign_up() {
  curl -fs "$API/v2/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery","firstName":"Bench"}' >/dev/null
  export REFRACT_TOKEN=$(curl -fs "$API/v2/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery"}' | jq -r .token)
  export REFRACT_WORKSPACE=$(curl -fs "$API/v2/workspaces" -H "authorization: Bearer $REFRACT_TOKEN" \
    -H 'content-type: application/json' -d '{"name":"Bench"}' | jq -r .id)
}

# deploy_echo REFRACT_BINARY: signs up, creates a workspace, deploys webhook-echo; sets HOOK.
deploy_echo() {
  sign_up
  "$1" deploy guest-sdk/examples/webhook-echo --url "$API" >/dev/null
  HOOK="$API/v2/workspaces/$REFRACT_WORKSPACE/webhooks/echo"
}

# run LABEL CONNECTIONS PACE_MS: one wrk run against $HOOK (pace 0 = closed loop).
run() {
  printf '%s: ' "$1"
  PACE_MS="$3" wrk -t2 -c"$2" -d"$DURATION" -s "$PWD/tests/benches/webhook.lua" "$HOOK" | tail -n 1
}

# The benchmark's load: 16 connections each sending one request every 16 ms (about 1,000
# req/s offered), then closed loops at 16 and 64 connections. The paced run goes first: after a closed-loop run the history service is still storing the
# few hundred thousand events that run produced for several seconds, and a paced run then
# measures that backlog, not the platform at 1,000 req/s.
load() {
  run "about 1000 req/s (16 connections, 16 ms pace)" 16 16
  run "concurrency 16" 16 0
  run "concurrency 64" 64 0
}
