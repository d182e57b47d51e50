"""The agent's side of a Media Stream: the pacer's ``Line`` as Twilio's JSON messages.

``SocketSender`` owns the socket's outbound half (one text frame at a time, straight to the
server's transport when the ``voxline.direct`` extension is attached); ``TwilioLine`` serializes
audio, marks and ``clear`` for one stream. Neither points back at the stream or the session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketState

from voxline.telephony.messages import clear_message, mark_message, media_message


class SocketSender:
    """Text frames out of one accepted WebSocket, in order.

    A peer that stops reading would block a send for ever (and its call with it). Each send stamps
    when it started waiting; ``check_stuck``, called about once a second, finds a send waiting
    longer than ``timeout_s``, calls ``on_stuck`` once, and from then on sends are dropped. (A timer
    per send would cost about 4 µs on each of a call's 50 frames a second.)"""

    def __init__(self, ws: WebSocket, timeout_s: float = 10.0, on_stuck: Callable[[], None] | None = None) -> None:
        self._ws = ws
        self._direct: Callable[[str], Awaitable[None]] | None = None
        self._lock = asyncio.Lock()
        self._timeout_s = timeout_s
        self._on_stuck = on_stuck
        self._waiting_since: float | None = None
        self.stuck = False

    def go_direct(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        """Send through the server's protocol from now on (it drops sends after the close)."""
        self._direct = send_text

    def detach(self) -> None:
        """The stream is over: no more direct sends, and no link back to the stream (no cycle)."""
        self._direct = None
        self._on_stuck = None

    async def send(self, text: str) -> None:
        if self.stuck:
            return
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        try:
            async with self._lock:
                if self._direct is not None:
                    await self._direct(text)
                elif self._ws.client_state is WebSocketState.CONNECTED:
                    await self._ws.send_text(text)
        finally:
            self._waiting_since = None

    def check_stuck(self, now: float) -> bool:
        """Whether a send has waited longer than the timeout (then ``on_stuck`` is called, once)."""
        if self.stuck or self._waiting_since is None or now - self._waiting_since <= self._timeout_s:
            return self.stuck
        self.stuck = True
        if self._on_stuck is not None:
            self._on_stuck()
        return True


class TwilioLine:
    """``voxline.playout.line.Line`` for one Media Stream."""

    def __init__(self, stream_sid: str, send: Callable[[str], Awaitable[None]]) -> None:
        self._stream_sid = stream_sid
        self._send = send

    async def audio(self, ulaw: bytes) -> None:
        await self._send(media_message(self._stream_sid, ulaw))

    async def mark(self, name: str) -> None:
        await self._send(mark_message(self._stream_sid, name))

    async def clear(self) -> None:
        await self._send(clear_message(self._stream_sid))
