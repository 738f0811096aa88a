#!/usr/bin/env bash
# Installs what the factory needs on a fresh machine of our kind; a second run does nothing.
#   node_modules/  from package-lock.json (npm ci)
#   .venv/         Temporal CLI, Triton, moto S3 server, PyTorch (CPU), ONNX, from requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -f node_modules/.factory-stamp ] || [ "$(cat node_modules/.factory-stamp)" != "$(stamp package-lock.json)" ]; then
  echo "setup: installing Node dependencies (npm ci)…" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  stamp package-lock.json > node_modules/.factory-stamp
fi

PYTHON=${FACTORY_PYTHON:-python3}
if [ ! -f .venv/.factory-stamp ] || [ "$(cat .venv/.factory-stamp)" != "$(stamp requirements.txt)" ]; then
  echo "setup: installing the Python side into .venv (first time: a few minutes)…" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt >&2
  stamp requirements.txt > .venv/.factory-stamp
fi
