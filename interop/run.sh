#!/usr/bin/env bash
# Installs the interop suite's pinned tools (npm and PyPI, lock files committed) into
# this folder and runs it against the proxy binary (MOP_PROXY_BIN, default the debug
# build that `cargo test` made).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
exec node run.mjs
