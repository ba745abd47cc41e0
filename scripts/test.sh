#!/usr/bin/env bash
# Set up (see setup_env.sh) and run the test suite (unit, end-to-end, benchmarks once each).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
python -m pytest -q tests benchmarks "$@"
