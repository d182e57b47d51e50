"""Per-frame micro-benchmarks of the hot path: the same as `voxline bench micro`.

.venv/bin/python bench/micro.py [--repeat 5]
"""

from __future__ import annotations

import sys

from voxline.cli import app

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "bench", "micro", *sys.argv[1:]]
    app()
