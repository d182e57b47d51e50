"""The processes of a benchmark: the server (pinned to its CPUs), the fake providers, the callers.

The server is ``voxline serve`` exactly as deployed; its CPU time, memory and descriptors are read
from /proc, its latencies from its own ``/metrics``. Everything else (simulators, fakes, this
process) is pinned to the other CPUs, so the server's share of the machine is known.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx

from voxline.benchmarks.fakes import FakeLatencies
from voxline.benchmarks.fleet import FleetSpec, fleet_process
from voxline.fakes.elevenlabs_server import API_KEY as ELEVENLABS_KEY
from voxline.fakes.openai_server import API_KEY as OPENAI_KEY

ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_cpus(server_cpus: str | None) -> tuple[set[int], set[int]]:
    """(server CPUs, client CPUs). Default on a machine with n CPUs: server on 0, clients on the rest;
    'all' lets everyone share every CPU."""
    from voxline.benchmarks.fakes import parse_cpus

    available = sorted(os.sched_getaffinity(0))
    if server_cpus == "all" or len(available) < 2:
        return set(available), set(available)
    server = parse_cpus(server_cpus) if server_cpus else {available[0]}
    client = set(available) - server
    return server, client or set(available)


class FakeProviders:
    """``python -m voxline.benchmarks.fakes`` as a child process."""

    def __init__(self, latencies: FakeLatencies, cpus: set[int]) -> None:
        self.latencies = latencies
        self.cpus = cpus
        self.process: subprocess.Popen | None = None
        self.urls: dict = {}

    def __enter__(self) -> FakeProviders:
        latency = self.latencies
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voxline.benchmarks.fakes",
                "--stt-ms",
                str(latency.stt_ms),
                "--llm-ttft-ms",
                str(latency.llm_ttft_ms),
                "--llm-token-ms",
                str(latency.llm_token_ms),
                "--tts-ms",
                str(latency.tts_ms),
                "--cpus",
                ",".join(map(str, sorted(self.cpus))),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the fake providers did not start")
        self.urls = json.loads(line)
        return self

    def server_env(self) -> dict[str, str]:
        return {
            "VOXLINE_STT": "openai",
            "VOXLINE_STT_MODEL": "whisper-1",
            "VOXLINE_LLM": "openai",
            "VOXLINE_LLM_MODEL": "gpt-4o-mini",
            "VOXLINE_TTS": "elevenlabs",
            "VOXLINE_TTS_MODEL": "eleven_flash_v2_5",
            "VOXLINE_TTS_VOICE": "bench",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": self.urls["openai_base_url"],
            "ELEVENLABS_API_KEY": ELEVENLABS_KEY,
            "ELEVENLABS_BASE_URL": self.urls["elevenlabs_base_url"],
            # Every reply is the same text: with the TTS cache on, only the first would reach the
            # fake TTS and the others would not pay its fixed latency.
            "VOXLINE_TTS_CACHE_MB": "0",
        }

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


class BenchServer:
    """``voxline serve`` in a child process pinned to ``cpus``, with signatures and the API on."""

    def __init__(self, env: dict[str, str], cpus: set[int], log_path: Path, ready_timeout_s: float = 300) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_token = secrets.token_hex(16)
        self.api_token = secrets.token_hex(16)
        self._data = tempfile.TemporaryDirectory(prefix="voxline-bench-")
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "VOXLINE_API_TOKEN": self.api_token,
            "VOXLINE_PUBLIC_URL": self.url,
            "VOXLINE_DATA_DIR": self._data.name,
            "VOXLINE_MAX_CALLS": "100000",
            "VOXLINE_UNSTARTED_STREAMS_PER_CLIENT": "100000",  # every simulated caller is this one address
            "VOXLINE_CALLER_SILENCE_TIMEOUT_S": "120",
            "VOXLINE_SHUTDOWN_GRACE_S": "5",
            **env,
        }
        self.env.pop("VOXLINE_DATABASE_URL", None)
        self.cpus = cpus
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(timeout=10)
        self._log_offset = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> BenchServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w", encoding="utf-8")
        voxline = Path(sys.executable).parent / "voxline"
        cpus = self.cpus
        self.process = subprocess.Popen(
            [str(voxline), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            try:
                if self.http.get(self.url + "/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"the server was not ready in {self.ready_timeout_s:.0f} s; see {self.log_path}")

    def metrics_text(self) -> str:
        return self.http.get(self.url + "/metrics").text

    def new_error_lines(self) -> list[str]:
        """ERROR lines the server logged since the last call."""
        self._log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(self._log_offset)
            text = f.read()
            self._log_offset = f.tell()
        return [line for line in text.splitlines() if ERROR_LINE.match(line)]

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self.http.close()
        self._data.cleanup()


class Fleets:
    """Simulator processes: ``slots`` callers split over ``processes`` processes."""

    def __init__(self, spec: FleetSpec, processes: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[BaseProcess, Connection]] = []
        processes = max(1, min(processes, spec.slots))
        for index in range(processes):
            slots = spec.slots // processes + (index < spec.slots % processes)
            receive, send = self._context.Pipe(duplex=False)
            part = replace(spec, slots=slots, seed=spec.seed * 31 + index)
            process = self._context.Process(target=fleet_process, args=(part, send), daemon=True)
            process.start()
            send.close()
            self._workers.append((process, receive))

    def results(self, timeout_s: float) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + timeout_s
        for process, receive in self._workers:
            if receive.poll(max(0.0, deadline - time.monotonic())):
                out.append(receive.recv())
            else:
                out.append({"fatal": "simulator process did not finish in time"})
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        return out
