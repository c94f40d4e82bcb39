#!/usr/bin/env bash
# Measures the proxy's overhead: the sample MCP server directly and through the proxy.
# Usage: scripts/bench.sh [--seconds N] [--concurrency 1,8,32]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin mcp-oauth-proxy --bin mop-bench
exec target/release/mop-bench --proxy-bin target/release/mcp-oauth-proxy "$@"
