"""The ``/media-stream`` WebSocket: Twilio's Media Streams protocol in, a call session behind it.

Bad input never takes the server down: a malformed message is logged and skipped, a binary
frame or a message for another stream likewise; too many of them in a row closes this stream
cleanly (1008). Whatever happens, the session is closed and its record kept.

The same loop serves the browser softphone (``voxline.web.softphone``), which speaks the same
protocol: ``MediaStream`` is subclassed there for its own access rule and call path, so a
softphone call goes through exactly the code a Twilio call does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voxline.access.capacity import Claim
from voxline.access.credentials import PARAMETER
from voxline.access.proxies import client_address
from voxline.services import Services, ServicesDep
from voxline.session.call import CallLimits, CallSession
from voxline.session.control import CallControl, CallControlUnavailable
from voxline.session.records import CallRecord
from voxline.telephony import messages as m
from voxline.telephony.direct_socket import DIRECT
from voxline.telephony.line import SocketSender, TwilioLine
from voxline.telephony.rest import RestCallControl
from voxline.telephony.security import public_base_url, websocket_url
from voxline.telephony.transfer_webhooks import whisper_url

log = logging.getLogger(__name__)

MAX_BAD_MESSAGES = 50
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
CLOSE_TIMEOUT_S = 2.0
SEND_CHECK_S = 1.0


async def media_stream(ws: WebSocket, services: ServicesDep) -> None:
    """Twilio's entry point: the upgrade must carry a valid ``X-Twilio-Signature``."""
    url = websocket_url(stream_base_url(ws, services), "/media-stream")
    signature = ws.headers.get("x-twilio-signature")
    await ws.accept()
    if not services.signatures.websocket_ok(url, signature):
        log.warning("media stream refused: invalid X-Twilio-Signature for %s (client %s)", m.shown(url, 200), ws.client)
        await ws.close(code=POLICY_VIOLATION, reason="invalid signature")
        return
    await run_stream(MediaStream(ws, services))


def stream_base_url(ws: WebSocket, services: Services) -> str:
    """The public base URL as the socket's peer reached it (``admission.base_url``'s twin for sockets)."""
    peer = ws.client.host if ws.client else None
    return public_base_url(services.settings.public_url, ws.headers, ws.url.scheme, peer, services.proxies)


async def run_stream(stream: MediaStream) -> None:
    """Serve an accepted socket once the models are ready and unless draining. The call limit is
    checked at ``start``, when the socket says which call it carries; until then the socket counts
    against its client's unstarted sockets, and it is closed if ``start`` does not come in time."""
    ws, services = stream.ws, stream.services
    if services.stack is None or services.draining:
        log.error("media stream refused: %s", "shutting down" if services.draining else "models are still loading")
        await ws.close(code=TRY_AGAIN_LATER, reason="not ready")
        return
    client = client_address(ws.client.host if ws.client else None, ws.headers, services.proxies)
    if not services.unstarted.open(client):
        log.warning("%s stream refused: %s already holds %d unstarted streams", stream.path, client,
                    services.unstarted.per_client)  # fmt: skip
        await ws.close(code=TRY_AGAIN_LATER, reason="too many unstarted streams")
        return
    stream.unstarted_client = client
    log.info("WebSocket connected (%s, %s)", stream.path, ws.client)
    # The receive loop runs in a task of its own: this coroutine sits under some fifteen ASGI
    # middleware frames, and every one of the 50 wake-ups a second would pass down and back up
    # through all of them (about 4 % of the server's CPU under load). Cancelling this coroutine
    # cancels the task it awaits, and the task runs in a copy of this context, as before.
    serving = stream.serving = asyncio.create_task(stream.serve(), name="media-stream")
    overdue = asyncio.get_running_loop().call_later(
        services.settings.stream_start_timeout_s, stream.start_overdue, serving
    )
    watching = asyncio.create_task(_watch_sends(stream.sender), name="media-stream-sends")
    try:
        await serving
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this coroutine itself is being cancelled
    finally:
        overdue.cancel()
        watching.cancel()
        await stream.close()


async def _watch_sends(sender: SocketSender) -> None:
    """Once a second: has a send waited too long (the peer stopped reading)?"""
    while True:
        await asyncio.sleep(SEND_CHECK_S)
        if sender.check_stuck(time.monotonic()):
            return


class MediaStream:
    """One Media Streams socket. Subclasses change who may start a call and what else is sent."""

    path: ClassVar[str] = "streaming"  # the call record's path and the metrics label

    def __init__(self, ws: WebSocket, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.session: CallSession | None = None
        self.bad = 0
        self.outcome = "completed"
        self.close_code = 1000
        self.close_reason = ""
        self.sender = SocketSender(ws, services.settings.send_timeout_s, self._peer_stuck)
        self._direct: dict | None = None  # the server's "voxline.direct" extension, once attached
        self._over: asyncio.Future[None] | None = None  # set when a directly fed stream ends
        self._slot: str | None = None  # the CallSid whose place this stream holds
        self.unstarted_client: str | None = None  # counted as unstarted for this client until 'start'
        self.serving: asyncio.Task | None = None  # the task that serves this socket (run_stream's)

    def call_control(self, call_sid: str, our_number: str) -> CallControl:
        """Twilio's REST API on the live call when configured (hanging up ends the call itself),
        else the stream alone (closing it ends ``<Connect>``, and so the call)."""
        stream_control = StreamCallControl(self.ws)
        rest = self.services.rest
        if rest is None:
            return stream_control
        transfer = self.services.agent.transfer
        base = stream_base_url(self.ws, self.services)
        return RestCallControl(
            rest,
            call_sid,
            caller_id=transfer.caller_id or our_number,
            fallback=stream_control,
            dial_timeout_s=transfer.timeout_s,
            status_url=f"{base}/voice/transfer-status",
            whisper_url=whisper_url(base, call_sid) if transfer.whisper else "",
        )

    def start_overdue(self, serving: asyncio.Task) -> None:
        """No valid ``start`` in time: the socket is closed (1008)."""
        if self.session is None and not serving.done():
            log.warning("%s stream closed: no valid 'start' within %g s (client %s)", self.path,
                        self.services.settings.stream_start_timeout_s, self.ws.client)  # fmt: skip
            self.outcome = "protocol-error"
            self.close_code, self.close_reason = POLICY_VIOLATION, "no start"
            serving.cancel()

    def _peer_stuck(self) -> None:
        """The peer stopped reading: the connection is dropped, so the call ends and frees its place."""
        log.error("%s stream closed: the peer has read nothing for %g s (client %s)", self.path,
                  self.services.settings.send_timeout_s, self.ws.client)  # fmt: skip
        self.outcome = "not-reading"
        if self._direct is not None:
            self._direct["abort"]()
        elif self.serving is not None:
            self.serving.cancel()

    def _started(self) -> None:
        if self.unstarted_client is not None:
            self.services.unstarted.done(self.unstarted_client)
            self.unstarted_client = None

    def refusal(self, start: m.Start) -> str | None:
        """Why this ``start`` may not begin a call (the stream is closed with 1008), or None: the
        credential the call's webhook issued must name this CallSid (unless signatures are off, --dev)."""
        if not self.services.signatures.enabled:
            return None
        return self.services.credentials.problem(start.call_sid, start.custom_parameters.get(PARAMETER, ""))

    def session_started(self) -> None:
        """Called once the call session runs."""

    async def closing(self) -> None:
        """Called before the session closes."""

    async def send(self, text: str) -> None:
        await self.sender.send(text)

    async def serve(self) -> None:
        """Until the stream ends: messages straight from the server when it offers that, else by ASGI."""
        direct = self.ws.scope.get("extensions", {}).get(DIRECT)
        if direct is None:
            await self._receive_loop()
            return
        self._over = asyncio.get_running_loop().create_future()
        self._direct = direct
        self.sender.go_direct(direct["send_text"])
        direct["attach"](self)
        await self._over

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                self._peer_gone()
                return
            if message["type"] == "websocket.disconnect":
                if self.session is not None:
                    self._peer_gone()
                return
            if not self._message(message.get("text")):
                return

    # DirectReceiver: called by the server's protocol, on the loop, as each message arrives.

    def websocket_text(self, text: str) -> None:
        self._direct_message(text)

    def websocket_bytes(self, data: bytes) -> None:
        self._direct_message(None)

    def websocket_closed(self) -> None:
        if self._over is not None and not self._over.done():
            if self.session is not None:
                self._peer_gone()
            self._over.set_result(None)

    def _peer_gone(self) -> None:
        if self.outcome == "completed":  # an outcome already decided (the peer stopped reading) stands
            self.outcome = "disconnected"

    def _direct_message(self, text: str | None) -> None:
        over = self._over
        if over is None or over.done():
            return  # the stream has ended; what follows is dropped
        try:
            if not self._message(text):
                over.set_result(None)
        except Exception as exc:  # fails serve(), as an exception in the receive loop would
            over.set_exception(exc)

    def _message(self, text: str | None) -> bool:
        """One message (None: a binary frame); False when the stream is over."""
        if text is None:
            self._reject("binary frame (Twilio error 31950)")
        else:
            try:
                if not self._dispatch(m.parse(text)):
                    return False
            except m.ProtocolError as exc:
                self._reject(f"{exc} (Twilio error 31951)")
        if self.bad > MAX_BAD_MESSAGES:
            log.error("closing the stream: %d malformed messages", self.bad)
            self.outcome = "protocol-error"
            self.close_code, self.close_reason = POLICY_VIOLATION, "too many malformed messages"
            return False
        return True

    def _reject(self, why: str) -> None:
        self.bad += 1
        log.warning("skipping message: %s", why)

    def _dispatch(self, event: m.InboundMessage) -> bool:
        """Handle one message; False when the stream is over."""
        if isinstance(event, m.Connected):
            log.info("stream connected (protocol %s, version %s)", m.shown(event.protocol), m.shown(event.version))
            return True
        if isinstance(event, m.Start):
            if self.session is not None:
                self._reject("a second 'start' on one stream")
                return True
            return self._start(event)
        if self.session is None:
            self._reject(f"'{type(event).__name__.lower()}' before 'start'")
            return True
        if event.stream_sid != self.session.record.stream_sid:
            self._reject(f"message for stream {m.shown(event.stream_sid)}, not {self.session.record.stream_sid}")
            return True
        if isinstance(event, m.Media):
            if event.track in ("inbound", "inbound_track"):
                self.session.on_audio(event.payload)
        elif isinstance(event, m.Mark):
            self.session.on_mark(event.name)
        elif isinstance(event, m.Dtmf):
            self.session.on_dtmf(event.digit)
        elif isinstance(event, m.CallerText):
            if self.takes_text:
                self.session.caller_typed(event.text)
            else:
                self._reject("voxline.text is the softphone's, not Twilio's")
        elif isinstance(event, m.Stop):
            log.info("stream stopped by Twilio (CallSid %s)", m.shown(event.call_sid))
            return False
        return True

    takes_text = False  # typed caller turns (``voxline.text``): the softphone's, never a phone call's

    def _start(self, start: m.Start) -> bool:
        if (why := self.refusal(start)) is not None:
            log.warning("%s stream refused: %s (client %s)", self.path, why, self.ws.client)
            self.close_code, self.close_reason = POLICY_VIOLATION, why
            return False
        call_sid = start.call_sid
        known = self.services.registry.find(call_sid)
        claim = Claim.DUPLICATE if known is not None else self.services.slots.claim(call_sid)
        if claim is Claim.DUPLICATE:  # one stream per call: a second one could overwrite its record
            log.warning("%s stream refused: call %s already has or had a stream", self.path, m.shown(call_sid))
            self.close_code, self.close_reason = POLICY_VIOLATION, "the call already has a stream"
            return False
        if claim is Claim.FULL:
            log.error(
                "%s stream refused: %d calls in progress (VOXLINE_MAX_CALLS)", self.path, self.services.slots.limit
            )
            self.close_code, self.close_reason = TRY_AGAIN_LATER, "too many calls"
            return False
        self._slot = call_sid
        if start.encoding != "audio/x-mulaw" or start.sample_rate != 8000 or start.channels != 1:
            log.warning(
                "unexpected media format %s/%d/%d; treating it as 8 kHz μ-law",
                start.encoding,
                start.sample_rate,
                start.channels,
            )
        params = start.custom_parameters
        record = CallRecord(
            call_sid=call_sid,
            stream_sid=start.stream_sid,
            path=self.path,
            agent=self.services.agent.name,
            caller=params.get("From", ""),
            called=params.get("To", ""),
        )
        log.info("stream started (CallSid %s, StreamSid %s)", m.shown(call_sid), m.shown(start.stream_sid))
        self.services.registry.begin(record)
        settings = self.services.settings
        limits = CallLimits(
            max_duration_s=settings.max_call_duration_s,
            silence_timeout_s=settings.caller_silence_timeout_s,
            draining=lambda: self.services.draining,
        )
        assert self.services.stack is not None  # run_stream admits no stream while the models load
        outbound = params.get("Direction") == "outbound-api"  # placed by us: our number is From
        self.session = CallSession(
            record,
            self.services.agent,
            self.services.stack,
            TwilioLine(start.stream_sid, self.sender.send),
            control=self.call_control(call_sid, params.get("From" if outbound else "To", "")),
            limits=limits,
            metrics=self.services.metrics,
            outbound=outbound,
            tools=self.services.tools,
        )
        if outbound:
            self._follow_outbound(record, self.session)
        self.services.metrics.active_calls.labels(self.path).inc()
        self._started()
        self.session.start()
        self.session_started()
        return True

    def _follow_outbound(self, record: CallRecord, session: CallSession) -> None:
        """A call we placed: its progress so far goes into its record, who answered to its session."""
        placed = self.services.outbound.listen(record.call_sid, session.on_answered_by)
        record.event("placed", to=record.called)
        for _, status in placed.statuses if placed is not None else []:
            record.event("call-status", status=status)

    async def close(self) -> None:
        self._started()  # (or never will)
        await self.closing()
        if self._slot is not None:
            self.services.slots.release(self._slot)
            self._slot = None
        if self.session is not None:
            self.services.outbound.ended(self.session.record.call_sid)
            await self.session.close(self.outcome)
            self.services.registry.end(self.session.record)
            self.services.metrics.active_calls.labels(self.path).dec()
            self.services.metrics.calls.labels(self.path, self.session.record.outcome).inc()
            self.session = None
        self._direct = None
        self.serving = None  # the task that ran this stream points back at it
        self.sender.detach()
        if self.ws.client_state is WebSocketState.CONNECTED:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):  # a peer that reads nothing never takes the close
                    await self.ws.close(code=self.close_code, reason=self.close_reason)
            except (RuntimeError, WebSocketDisconnect, TimeoutError):
                pass  # the peer went away while we were closing


class StreamCallControl:
    """Call control over the Media Stream alone: hanging up closes the socket, which ends
    ``<Connect>``; no TwiML follows it, so the call ends. Transfers and keypad tones need
    Twilio's REST API on the live call."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    async def hang_up(self) -> None:
        if self._ws.client_state is WebSocketState.CONNECTED:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._ws.close(code=1000, reason="call ended")
            except (RuntimeError, WebSocketDisconnect, TimeoutError):
                pass

    async def transfer(self, to: str) -> None:
        raise CallControlUnavailable("transferring a call needs Twilio's REST API, which is not configured")

    async def send_digits(self, digits: str) -> None:
        raise CallControlUnavailable("sending digits needs Twilio's REST API, which is not configured")
