#!/usr/bin/env bash
# Measures the proxy in one run (see docs/benchmarks.md): the MCP path straight to the
# server, through nginx (the reference for one proxy hop) and through the proxy; the
# refresh grant on SQLite and on PostgreSQL; event streams held open. Installs nginx and
# PostgreSQL from Debian's packages when missing; PostgreSQL runs with its default
# settings, on its own port, and is stopped at the end.
# Usage: scripts/bench.sh [--seconds N] [--concurrency 1,16] [--families 1,4,16] [--streams 10000]
#        MOP_BENCH_POSTGRES=0 scripts/bench.sh ...   leaves PostgreSQL out
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null && [ -x /usr/sbin/nginx ]; then
    PATH="$PATH:/usr/sbin"
fi
if ! command -v nginx >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing nginx (the reference proxy) from Debian's packages"
    $sudo apt-get install -y -q --no-install-recommends nginx >/dev/null || echo "no nginx: the run leaves the reference out"
    PATH="$PATH:/usr/sbin"
fi
cargo build --release --locked --bin mcp-oauth-proxy --bin mop-bench
postgres=()
if [ "${MOP_BENCH_POSTGRES:-1}" != 0 ]; then
    pg_dir=target/bench-pg
    trap "./scripts/postgres.sh stop $pg_dir >/dev/null 2>&1 || true" EXIT
    url=$(MOP_PG_SETTINGS="" ./scripts/postgres.sh start "$pg_dir" 54339 | tail -n 1)
    postgres=(--postgres-url "$url")
fi
target/release/mop-bench --proxy-bin target/release/mcp-oauth-proxy "${postgres[@]}" "$@"
