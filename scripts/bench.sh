#!/usr/bin/env bash
# Measures the proxy's overhead: the sample MCP server directly, through nginx (the
# reference for one proxy hop, installed from Debian's packages when missing) and through
# the proxy. Usage: scripts/bench.sh [--seconds N] [--concurrency 1,8,32]
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
exec target/release/mop-bench --proxy-bin target/release/mcp-oauth-proxy "$@"
