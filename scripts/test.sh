#!/usr/bin/env bash
# Set up (see setup_env.sh) and run the test suite (unit, end-to-end, benchmarks once each).
# The HTML report test needs a real headless browser: Debian's chromium is installed when
# missing and apt-get is available (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
. .venv/bin/activate
python -m pytest -q tests benchmarks "$@"
