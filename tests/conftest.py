"""Shared fixtures: real human speech from Debian packages, and the real server on a loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
AUTH_TOKEN = "test-auth-token-0123456789"
API_TOKEN = "test-api-token-9876543210"
ARTIFACTS = Path(__file__).parent / "artifacts"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make test` (scripts/install-test-data.sh installs it)")
    return path


@pytest.fixture(scope="session")
def librivox() -> dict[str, Path]:
    """The five LibriVox utterances, keyed by their last number (0870 … 0930)."""
    folder = _require(LIBRIVOX)
    return {p.stem.rsplit("-", 1)[1]: p for p in sorted(folder.glob("*.wav"))}


@pytest.fixture(scope="session")
def prompts() -> Path:
    return _require(PROMPTS)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """The real application under uvicorn, in a thread of this process, on a loopback port."""

    def __init__(self, settings, stack=None, asgi_websockets: bool = False, send_buffer: int | None = None) -> None:
        import uvicorn

        from voxline.app import create_app
        from voxline.server import uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings.public_url = self.url
        self.app = create_app(settings, stack)
        self.services = self.app.state.services
        config = uvicorn_config(self.app, settings, "127.0.0.1", self.port)
        if asgi_websockets:  # uvicorn's own protocol, without the voxline.direct extension
            config.ws = "websockets-sansio"
        self._server = uvicorn.Server(config)
        self._send_buffer = send_buffer  # SO_SNDBUF of accepted sockets (fixed: no autotuning)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="voxline-server", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        sockets = None
        if self._send_buffer is not None:  # accepted sockets inherit the listening socket's buffer size
            listening = socket.socket()
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
            listening.bind(("127.0.0.1", self.port))
            sockets = [listening]
        self.loop.run_until_complete(self._server.serve(sockets=sockets))

    def task_count(self) -> int:
        """Tasks alive on the server's event loop."""

        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)

    def start(self, timeout_s: float = 180.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while self.services.stack is None:
            if self.services.load_error:
                raise RuntimeError(self.services.load_error)
            if time.monotonic() > deadline:
                raise TimeoutError("models did not load")
            time.sleep(0.1)
        while not self._server.started:  # the models may be shared and ready before the port is open
            if not self._thread.is_alive():
                raise RuntimeError("the server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start listening")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def transcribe(self, pcm8k) -> str:
        """Transcribe audio the caller heard with the server's own embedded STT."""
        return self.services.stack.stt.transcribe_blocking(pcm8k, "en")

    def record(self, call_sid: str):
        return self.services.registry.find(call_sid)

    async def wait_record_closed(self, call_sid: str, timeout_s: float = 10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = self.record(call_sid)
            if record is not None and record.ended_at is not None:
                return record
            await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_sid} was not closed")


ACCOUNT_SID = "AC" + "0" * 32
LOOPBACK_RECORDINGS = "http://127.0.0.1:"  # the simulator's stand-in for Twilio's recordings API


def twilio_start(call_sid: str, stream_sid: str, credential: str | None = None, **parameters: str) -> str:
    """A ``start`` message as Twilio sends it for a call its voice webhook admitted: the webhook's
    stream credential among the custom parameters (``credential=""`` leaves it out)."""
    import json

    from voxline.access.credentials import PARAMETER, StreamCredentials

    if credential is None:
        credential = StreamCredentials(AUTH_TOKEN).issue(call_sid)
    custom = {PARAMETER: credential, **parameters} if credential else dict(parameters)
    start = {
        "accountSid": ACCOUNT_SID,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": custom,
    }
    return json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": stream_sid})


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    from voxline.config import Settings
    from voxline.logs import configure

    configure("INFO")
    settings = Settings(
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        api_token=API_TOKEN,
        data_dir=tmp_path_factory.mktemp("voxline-data"),
        recording_fetch_window_s=2.0,
        recording_url_prefixes=LOOPBACK_RECORDINGS,
    )
    running = RunningServer(settings)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def make_server(server, tmp_path):
    """Another server on its own port with other settings, sharing the loaded models."""
    from voxline.config import Settings

    started: list[RunningServer] = []

    def make(stack=None, asgi_websockets: bool = False, send_buffer: int | None = None, **overrides) -> RunningServer:
        settings = Settings(
            **{
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "api_token": API_TOKEN,
                "data_dir": tmp_path / f"data{len(started)}",
                "recording_url_prefixes": LOOPBACK_RECORDINGS,
                **overrides,
            }
        )
        running = RunningServer(
            settings, stack=stack or server.services.stack, asgi_websockets=asgi_websockets, send_buffer=send_buffer
        )
        running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
