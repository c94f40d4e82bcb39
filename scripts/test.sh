#!/usr/bin/env bash
# Runs every check and test of the project, installing what they need.
# Used by developers and by CI (.ci/run). Prints how long each stage took.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo "==> $name"
    "$@"
    echo "==> $name: done in $((SECONDS - start))s"
}

# PostgreSQL for the storage behaviour suite and the replica tests; never skipped here.
start_postgres() {
    MOP_TEST_POSTGRES_URL=$(./scripts/postgres.sh start | tail -n 1)
    export MOP_TEST_POSTGRES_URL
    export MOP_REQUIRE_POSTGRES=1
}
trap './scripts/postgres.sh stop || true' EXIT

stage "format" cargo fmt --all -- --check
stage "lint" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "build tests" cargo test --workspace --locked --no-run
stage "postgres" start_postgres
stage "tests" cargo test --workspace --locked
# Real clients and a real provider against the binary the tests just built.
stage "interop" env MOP_PROXY_BIN="$PWD/target/debug/mcp-oauth-proxy" ./interop/run.sh
echo "==> all stages passed in ${SECONDS}s"
