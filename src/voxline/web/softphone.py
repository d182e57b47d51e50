"""``/phone-stream``: the browser softphone's WebSocket, in Twilio's Media Streams format.

The browser plays Twilio's part (connected, start, 20 ms μ-law media, mark echoes, stop), so the
call runs through the same stream loop and call session as a phone call, and is recorded with
path ``softphone``. Browsers cannot set headers on a WebSocket, so when ``VOXLINE_API_TOKEN`` is
set the token travels in the ``start`` message's ``customParameters`` (``token``). Without a
token the socket exists only in ``--dev`` mode, and then only for pages of this same server.

Besides Twilio's messages, this socket (and only this one) takes ``voxline.text``, a turn the
caller types instead of saying (the same session answers it, without the speech-to-text), and sends
``voxline.call`` once the call
starts, ``voxline.caller`` with what the caller said as soon as it is transcribed, and
``voxline.turn`` after each finished turn (as the record changes, no polling), so the page can show
the transcript and each turn's latency without polling the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import asdict
from urllib.parse import urlsplit

from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocket

from voxline.services import Services, ServicesDep
from voxline.session.control import CallControl
from voxline.telephony import messages as m
from voxline.telephony.media_stream import MediaStream, StreamCallControl, run_stream
from voxline.web.pages import api_token_set, softphone_enabled

log = logging.getLogger(__name__)


async def phone_stream(ws: WebSocket, services: ServicesDep) -> None:
    settings = services.settings
    if not softphone_enabled(settings):
        await _deny(ws, "the softphone is off: set VOXLINE_API_TOKEN or run with --dev")
        return
    if not api_token_set(settings) and not _same_origin(ws):
        # Without a token any web page could reach a --dev server through its visitor's browser.
        await _deny(ws, f"cross-origin softphone connection refused (Origin {ws.headers.get('origin')})")
        return
    await ws.accept()
    await run_stream(SoftphoneStream(ws, services))


async def _deny(ws: WebSocket, why: str) -> None:
    log.warning("softphone stream refused: %s (client %s)", why, ws.client)
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(PlainTextResponse("Not Found", status_code=404))
    else:
        await ws.close()  # before accepting: the server answers the upgrade with 403


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host", "")


class SoftphoneStream(MediaStream):
    path = "softphone"
    takes_text = True  # the page may send what the caller types (``voxline.text``)

    def __init__(self, ws: WebSocket, services: Services) -> None:
        super().__init__(ws, services)
        self._reporter: asyncio.Task | None = None

    def call_control(self, call_sid: str, our_number: str) -> CallControl:
        """A browser call is not a Twilio call: ending it closes the socket."""
        return StreamCallControl(self.ws)

    def refusal(self, start: m.Start) -> str | None:
        expected = self.services.settings.api_token.get_secret_value()
        if not expected:
            return None  # --dev without a token: the page's origin was checked on upgrade
        given = start.custom_parameters.get("token", "")
        if not secrets.compare_digest(given.encode(), expected.encode()):
            return "invalid token"
        return None

    def session_started(self) -> None:
        assert self.session is not None
        self._reporter = asyncio.create_task(self._report(), name=f"softphone-report-{self.session.record.call_sid}")

    async def closing(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter

    async def _report(self) -> None:
        """Tell the page about the call, then about each turn as the session records it."""
        assert self.session is not None
        record = self.session.record
        await self.send(
            _dump(
                {
                    "event": "voxline.call",
                    "streamSid": record.stream_sid,
                    "callSid": record.call_sid,
                    "agent": record.agent,
                    "greeting": self.services.agent.greeting,
                }
            )
        )
        sent = 0
        transcribed = None
        changed = record.watch()
        while True:
            await changed.wait()
            changed.clear()
            if record.transcribed != transcribed and record.transcribed is not None:
                transcribed = record.transcribed
                await self.send(
                    _dump(
                        {
                            "event": "voxline.caller",
                            "streamSid": record.stream_sid,
                            "turn": transcribed[0],
                            "text": transcribed[1],
                        }
                    )
                )
            turns = record.turns[sent:]
            sent += len(turns)
            for turn in turns:
                await self.send(_dump({"event": "voxline.turn", "streamSid": record.stream_sid, "turn": asdict(turn)}))


def _dump(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))
