"""Running the app under uvicorn with a graceful shutdown that loses no call.

On the first SIGTERM (or Ctrl-C) the server stops taking calls (webhooks answer "busy", the
health check says "draining"), lets each call in progress finish its current turn and say
goodbye, and exits once none is left or the grace period ends. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from types import FrameType

import uvicorn

from voxline.telephony.direct_socket import DirectWebSocketProtocol

log = logging.getLogger(__name__)


def uvicorn_config(app, settings, host: str, port: int) -> uvicorn.Config:
    """How Voxline runs under uvicorn, the same for ``voxline serve`` and the tests."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        ws=DirectWebSocketProtocol,  # Media Streams messages without the ASGI queue
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=None,
        # Media Streams audio is base64 μ-law: compressing it costs CPU per frame
        # and saves little. uvloop and httptools (uvicorn[standard]) are picked by "auto".
        ws_per_message_deflate=False,
        # Forwarded headers are read by Voxline itself, and only from VOXLINE_TRUSTED_PROXIES
        # (uvicorn's own handling would trust 127.0.0.1 whatever the configuration says).
        proxy_headers=False,
        loop="auto",
        http="auto",
    )


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, services, grace_s: float) -> None:
        super().__init__(config)
        self._services = services
        self._grace_s = grace_s
        self._drain: asyncio.Task | None = None
        self._calls_cut = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._services.draining or self._services.active_calls() == 0 or self._grace_s <= 0:
            self._calls_cut = self._calls_cut or self._services.active_calls() > 0
            super().handle_exit(sig, frame)
            return
        self._services.draining = True
        log.warning(
            "%s: no new calls; waiting up to %.0f s for %d calls to finish their turn",
            signal.Signals(sig).name,
            self._grace_s,
            self._services.active_calls(),
        )
        # A signal handler interrupts the loop at an arbitrary point: schedule the work, don't do it here.
        loop = asyncio.get_running_loop()
        loop.call_soon_threadsafe(self._start_drain, loop, sig)

    def _start_drain(self, loop: asyncio.AbstractEventLoop, sig: int) -> None:
        self._drain = loop.create_task(self._wait_then_exit(sig))

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            if not self._calls_cut:
                # uvicorn re-raises the signal after shutdown; a shutdown that cut no call is a clean exit (0).
                self._captured_signals.clear()

    async def _wait_then_exit(self, sig: int) -> None:
        deadline = time.monotonic() + self._grace_s
        while self._services.active_calls() and time.monotonic() < deadline:  # noqa: ASYNC110 (calls end in other tasks)
            await asyncio.sleep(0.1)
        left = self._services.active_calls()
        if left:
            self._calls_cut = True
            log.error("grace period over: %d calls still in progress are being cut", left)
        else:
            log.info("every call has ended; shutting down")
        super().handle_exit(sig, None)
