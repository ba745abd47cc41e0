#!/usr/bin/env bash
# Set up (see setup_env.sh) and run the quick suite on ml-100k; prints the leaderboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
harness run suites/quick.toml "$@"
