"""Live STT sockets opened when the voice webhook is answered, parked until the call's stream starts.

Twilio opens the media stream a few hundred milliseconds after the webhook's answer. Opening the
provider's socket at webhook time (in the background) means it is already connected when the
caller first speaks, so the first turn pays no TLS/WebSocket handshake. The stream's ``start``
claims the socket by CallSid; one nobody claims is closed after ``hold_s``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from voxline.stt.base import SpeechStream, StreamingSpeechToText

log = logging.getLogger(__name__)

HOLD_S = 30.0


@dataclass
class _Parked:
    stream: SpeechStream
    language: str
    expiry: asyncio.TimerHandle


class StreamParking:
    """CallSid → an opening socket. Lives with the voice stack; touched only from the event loop."""

    def __init__(self, stt: StreamingSpeechToText, hold_s: float = HOLD_S) -> None:
        self.stt = stt
        self.hold_s = hold_s
        self._parked: dict[str, _Parked] = {}
        self._closing: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, call_sid: str, language: str) -> None:
        """Start opening the call's socket; it connects in the background."""
        if not call_sid or call_sid in self._parked:
            return
        stream = self.stt.open(language)
        expiry = asyncio.get_running_loop().call_later(self.hold_s, self._expire, call_sid)
        self._parked[call_sid] = _Parked(stream, language, expiry)
        log.info("STT socket opening for call %s (%s)", call_sid, language or "default language")

    def claim(self, call_sid: str, language: str) -> SpeechStream:
        """The call's parked socket, or a new one if none was parked, it failed, or the language differs."""
        parked = self._parked.pop(call_sid, None)
        if parked is not None:
            parked.expiry.cancel()
            if parked.language == language and getattr(parked.stream, "fatal", None) is None:
                log.info(
                    "STT socket for call %s claimed (%s)",
                    call_sid,
                    "connected" if getattr(parked.stream, "connected", False) else "still connecting",
                )
                return parked.stream
            self._close(parked.stream)
        return self.stt.open(language)

    def _expire(self, call_sid: str) -> None:
        parked = self._parked.pop(call_sid, None)
        if parked is not None:
            log.info("STT socket for call %s closed: no stream claimed it in %.0f s", call_sid, self.hold_s)
            self._close(parked.stream)

    def _close(self, stream: SpeechStream) -> None:
        task = asyncio.get_running_loop().create_task(stream.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        for call_sid in list(self._parked):
            parked = self._parked.pop(call_sid)
            parked.expiry.cancel()
            await parked.stream.close()
