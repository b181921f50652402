#!/usr/bin/env bash
# The OpenAPI contract, checked against a running node: validates /openapi.json as OpenAPI 3.1
# (openapi-spec-validator), then runs schemathesis against it with an administrator token and a
# caseworker token — every check, every phase (examples, coverage, fuzzing, stateful) — and fails
# on any failure. Called by `.ci/run`; runs alone too: `bash .ci/schemathesis.sh`.
#
# Tunables (environment): ST_MAX_EXAMPLES (per operation, default 30), ST_MAX_TIME (seconds per
# token, default 75), ST_SEED (default fixed, so CI is reproducible; `random` for a new one),
# HKS_VENV (default /tmp/hks-venv), HKS_BIN (a built hukou-sync; default: cargo build, debug).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
VENV="${HKS_VENV:-/tmp/hks-venv}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-30}"
MAX_TIME="${ST_MAX_TIME:-75}"
SEED="${ST_SEED:-20261205}"

log() { printf '\n== %s\n' "$*"; }

# Python tools in a virtual environment, pinned.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
    || ! "$VENV/bin/pip" show openapi-spec-validator 2>/dev/null | grep -q "^Version: $VALIDATOR_VERSION$"; then
    log "installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $VALIDATOR_VERSION in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

if [ -z "${HKS_BIN:-}" ]; then
    cargo build --quiet --bin hukou-sync
    HKS_BIN="${CARGO_TARGET_DIR:-target}/debug/hukou-sync"
fi

# A node of its own: a temporary directory, a free port on loopback, seeded data.
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$WORK/node.toml" <<TOML
[node]
id = "410100"
serves = ["*"]
signing_key = "$WORK/node-signing.key"
[database]
url = "sqlite://$WORK/node.db"
[admin]
listen = "127.0.0.1:$PORT"
[log]
filter = "warn"
TOML
hks() { "$HKS_BIN" --config "$WORK/node.toml" "$@"; }
token() { hks admin token create "$1" --role "$2" 2>&1 | grep -o 'hks_[A-Za-z0-9_-]*' | head -n1; }

log "seeding a node on 127.0.0.1:$PORT"
ADMIN_TOKEN="$(token schemathesis-admin administrator)"
CASEWORKER_TOKEN="$(token schemathesis-caseworker caseworker)"
[ -n "$ADMIN_TOKEN" ] && [ -n "$CASEWORKER_TOKEN" ] || { echo "could not create tokens"; exit 1; }
hks sample --count 200 --out "$WORK/ledger.csv" >/dev/null 2>&1
hks import "$WORK/ledger.csv" >/dev/null 2>&1

hks serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    curl -sf "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log"; echo "the node did not start"; exit 1; }
    sleep 0.2
done
curl -sf "$BASE/healthz" >/dev/null || { cat "$WORK/serve.log"; echo "the node does not answer"; exit 1; }

log "validating /openapi.json (OpenAPI 3.1)"
curl -sf "$BASE/openapi.json" >"$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

status=0
for who in administrator caseworker; do
    if [ "$who" = administrator ]; then tok="$ADMIN_TOKEN"; else tok="$CASEWORKER_TOKEN"; fi
    log "schemathesis as $who (max $MAX_EXAMPLES examples per operation, ${MAX_TIME}s)"
    # One worker: Python 3.11's ast module is not thread-safe, and hypothesis parses lambdas'
    # sources from worker threads ("AST constructor recursion depth mismatch", a tool error).
    seed_arg=(--seed "$SEED")
    [ "$SEED" = random ] && seed_arg=()
    (cd "$WORK" && "$VENV/bin/schemathesis" --no-color --config-file "$REPO/.ci/schemathesis.toml" run "$BASE/openapi.json" \
        -H "Authorization: Bearer $tok" \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" "${seed_arg[@]}" \
        --workers 1 --request-timeout 30) || status=1
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the node stopped during the run:"; tail -n 50 "$WORK/serve.log"; status=1
fi
if grep -q "panicked" "$WORK/serve.log"; then
    echo "the node panicked during the run:"; grep -B2 -A5 "panicked" "$WORK/serve.log" | head -n 60; status=1
fi
exit "$status"
