#!/usr/bin/env bash
# Create .venv (if missing) and install the harness with the CPU torch build and recbole's data.
# torch is installed first and pinned (TORCH_SPEC) so that no multi-GB CUDA build is pulled in;
# recbole is installed with --no-deps because its ray<=2.6.3 pin breaks under numpy 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
pip install -q --disable-pip-version-check --upgrade pip
pip install -q --disable-pip-version-check "$TORCH_SPEC"
pip install -q --disable-pip-version-check --no-deps "recbole==1.2.1"
pip install -q --disable-pip-version-check -e ".[test]" "$TORCH_SPEC"
