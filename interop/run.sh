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
# The Python SDK's 2.x line beside the 1.x above: each in its own environment.
if [ ! -x .venv2/bin/python ]; then
    python3 -m venv .venv2
fi
.venv2/bin/pip install --quiet --disable-pip-version-check -r requirements-2.lock
exec node run.mjs
