"""The load benchmark end to end, tiny: `voxline bench load` with 2 calls and one short step.

It runs the real server, the fake providers and a simulator process, exactly as the full
benchmark does, and checks the JSON result holds real measurements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_bench_load_smoke(tmp_path: Path, librivox) -> None:
    voxline = Path(sys.executable).parent / "voxline"
    run = subprocess.run(
        [
            str(voxline),
            "bench",
            "load",
            "--calls",
            "2",
            "--step-s",
            "15",
            "--ramp-s",
            "1",
            "--label",
            "smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.png").stat().st_size > 1000
    assert result["machine"]["cores"] >= 1 and result["command"].startswith("voxline bench load")
    assert result["floor_ms"] >= 300  # at least the end-of-turn silence
    (step,) = result["steps"]
    assert step["calls"] == 2 and step["turns"] >= 2
    v2v = step["v2v_ms"]
    assert v2v["n"] == step["turns"] and 300 < v2v["p50"] <= v2v["p95"] <= v2v["p99"] < 5000
    assert step["overhead_ms"]["n"] == step["turns"] and step["overhead_ms"]["p50"] < 1000
    assert step["frame_lateness_ms"]["n"] > 0 and step["frame_lateness_ms"]["p99"] is not None
    assert step["loop_lag_ms"]["p99"] is not None
    assert 0 < step["cpu_s_per_call_minute"] < 60
    assert step["rss_peak_mb"] > 20 and step["fds_peak"] > 0
    assert step["calls_completed"] >= 2 and step["lost_turns"] == 0
    assert step["errors"] == [], step["errors"]
