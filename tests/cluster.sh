#!/usr/bin/env bash
# Starts the local Refract cluster for a person to use: 2 gateways behind a round-robin
# balancer, 2 runtimes, 2 events and 1 workspaces instance, each its own process, on Redis,
# PostgreSQL and an S3-compatible server on loopback. Prints the balancer's URL; Ctrl-C stops
# everything (and drops the cluster's PostgreSQL schema).
#
# Backends (defaults: this machine's CI services):
#   REFRACT_TEST_REDIS_URL     redis://127.0.0.1:6379
#   REFRACT_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:5432/test
#   REFRACT_TEST_FILES_URL     s3://refract-cluster/files?endpoint=http://127.0.0.1:9417&region=us-east-1
#                              (the bucket is created if the server is moto or allows it;
#                              set it to "" for a local folder instead)
set -euo pipefail
cd "$(dirname "$0")/.."

export REFRACT_TEST_REDIS_URL="${REFRACT_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export REFRACT_TEST_DATABASE_URL="${REFRACT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ -z "${REFRACT_TEST_FILES_URL+set}" ]; then
  export REFRACT_TEST_FILES_URL="s3://refract-cluster/files?endpoint=http://127.0.0.1:9417&region=us-east-1"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  if ! curl -fsS -o /dev/null -X PUT http://127.0.0.1:9417/refract-cluster 2>/dev/null \
     && ! curl -fsS -o /dev/null http://127.0.0.1:9417/refract-cluster 2>/dev/null; then
    echo "no S3 server on 127.0.0.1:9417 (moto_server -p 9417); using a local folder" >&2
    export REFRACT_TEST_FILES_URL=""
  fi
fi

cargo build --release -p refract-tests --bin refract-node
bin="${CARGO_TARGET_DIR:-target}/release/refract-node"
exec "$bin" cluster
