"""Shared by the benchmarks: a Voxline server in its own process, percentiles, result files."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from voxline.benchmarks.report import write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "mean": None, "n": 0}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "mean": round(float(arr.mean()), 1),
        "n": int(arr.size),
    }


def write_result(name: str, payload: dict) -> Path:
    """``bench/results/<name>.json`` with the date, the machine and the command, as every benchmark writes."""
    return write_json(name, payload, RESULTS)


class ServerProcess:
    """``voxline serve`` in a child process on a free loopback port, signatures and the API on."""

    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_token = secrets.token_hex(16)
        self.api_token = secrets.token_hex(16)
        self._env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "VOXLINE_API_TOKEN": self.api_token,
            "VOXLINE_PUBLIC_URL": self.url,
            **(env or {}),
        }
        self._log_path = log_path or RESULTS / "server.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self._log = open(self._log_path, "w", encoding="utf-8")
        voxline = Path(sys.executable).parent / "voxline"
        self._process = subprocess.Popen(
            [str(voxline), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited; see {self._log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise TimeoutError("server did not become ready")

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=20)
        self._log.close()

    def call_record(self, call_sid: str) -> dict:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        for _ in range(100):
            record = httpx.get(f"{self.url}/api/calls/{call_sid}", headers=headers, timeout=5).json()
            if record.get("ended_at"):
                return record
            time.sleep(0.1)
        return record
