#!/usr/bin/env bash
# Installs the interop suite's pinned tools (npm and PyPI, lock files committed) into
# this folder and runs it against the proxy binary (MOP_PROXY_BIN, default the debug
# build that `cargo test` made).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
# The pages' scenario drives Debian's Chromium (playwright-core, pinned above, brings no
# browser of its own). Installed when missing, as root (CI); otherwise say how.
if [ ! -x "${MOP_CHROMIUM:-/usr/bin/chromium}" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing Chromium from Debian's packages (the pages' browser tests)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
    else
        echo "no Chromium: install Debian's chromium package (or set MOP_CHROMIUM) for the pages' scenario" >&2
    fi
fi
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
