"""Plays Twilio against a running Voxline: the webhook, the signed WebSocket, real-time audio.

It does what Twilio does, in Twilio's exact message format: posts a signed voice webhook, reads
the ``<Connect><Stream>`` TwiML, opens the stream with a signed upgrade, sends ``connected`` and
``start``, then a 160-byte μ-law frame every 20 ms (the caller's speech, or line silence), with
string sequence numbers and a per-track chunk counter. The server's audio goes into a model of
Twilio's playback buffer, which echoes marks when they are reached and on ``clear``.

Latency is measured as a caller would feel it: from the caller's last speech frame to the first
audible frame of the reply coming out of the playback buffer.

The socket is aiohttp's client, whose frame writer and reader are compiled: a load run keeps
hundreds of these calls going from one process, and the simulator must cost far less CPU than the
server it measures. httpx stays for the webhook and the API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import numpy as np
import orjson

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE
from voxline.simulator.playback import PlaybackBuffer
from voxline.telephony.security import sign

log = logging.getLogger(__name__)

FRAME_S = FRAME_SAMPLES / TELEPHONY_RATE
SILENCE_FRAME = bytes([0xFF]) * FRAME_SAMPLES
SILENCE_PAYLOAD = base64.b64encode(SILENCE_FRAME).decode("ascii")
# Twilio's media message, field for field; built by formatting because hundreds of simulated
# calls each send one every 20 ms and the load generator must not become the bottleneck.
MEDIA_TEMPLATE = (
    '{"event":"media","sequenceNumber":"%d","media":{"track":"inbound","chunk":"%d",'
    '"timestamp":"%d","payload":"%s"},"streamSid":"%s"}'
)


# Close codes as RFC 6455 names them where no close frame (or no code in it) came from the server.
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006
OPEN_TIMEOUT_S = 10.0  # the opening handshake, as Twilio would give up on a server that does not answer
USER_AGENT = "Twilio.TmeWs/1.0"


def stream_session() -> aiohttp.ClientSession:
    """A session for simulated media streams; one can carry any number of calls (one socket each).

    The upgrade request carries only what Twilio's does (Host, the WebSocket headers, User-Agent,
    X-Twilio-Signature): no Accept / Accept-Encoding defaults, no cookies, no pool limit.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept", "Accept-Encoding"),
        timeout=aiohttp.ClientTimeout(total=None),
    )


def _line_noise(dbfs: float, seconds: float = 2.0) -> tuple[list[np.ndarray], list[str]]:
    """A loop of white hiss at ``dbfs``: as frames of samples, and as media payloads."""
    rng = np.random.default_rng(20)
    samples = rng.standard_normal(int(seconds * TELEPHONY_RATE)) * 32768 * 10 ** (dbfs / 20)
    pcm = np.clip(samples, -32768, 32767).astype(np.int16).reshape(-1, FRAME_SAMPLES)
    frames = list(pcm)
    return frames, [base64.b64encode(mulaw.encode(f)).decode("ascii") for f in frames]


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class EchoPath:
    """The caller's phone plays the agent's audio back into its microphone (a speakerphone, a
    line with echo): ``gain_db`` down, ``delay_ms`` late, mixed into what the caller sends."""

    gain_db: float
    delay_ms: int


@dataclass
class _Utterance:
    frames: list[str]  # base64 payloads of 160-byte μ-law frames
    done: asyncio.Future
    pcm: np.ndarray | None = None  # the same audio as samples, when an echo is mixed in
    sent: int = 0
    first_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.sent >= len(self.frames)

    def frame_sent(self, at: float) -> None:
        if self.sent == 0:
            self.first_at = at
        self.sent += 1
        if self.finished and not self.done.done():
            self.done.set_result((self.first_at, at))


@dataclass
class CallerTurn:
    label: str
    audio: np.ndarray  # 8 kHz int16
    barge_in_after_s: float | None = None  # talk over the agent this long after its audio starts
    dtmf: str = ""  # press these keys instead of speaking
    text: str = ""  # type this instead of speaking (the softphone's ``voxline.text``)


@dataclass
class TurnResult:
    label: str
    speech_start: float
    speech_end: float
    reply_audible_at: float | None = None
    reply_end: float | None = None
    clear_at: float | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.reply_audible_at is None else self.reply_audible_at - self.speech_end


@dataclass
class CallResult:
    call_sid: str
    stream_sid: str
    twiml: str
    started: float
    greeting_audible_at: float | None
    greeting_end: float | None
    turns: list[TurnResult]
    playback: PlaybackBuffer
    close_code: int | None = None
    messages_received: dict[str, int] = field(default_factory=dict)

    def heard(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        return self.playback.heard(self.started if since is None else since, until)


async def ended_call_record(base_url: str, api_token: str, call_sid: str, timeout_s: float = 30.0) -> dict | None:
    """The call's record from the call-record API (``GET /api/calls/{CallSid}``) once it has ended;
    past ``timeout_s``, the last record seen (still in progress), or None if none was served."""
    deadline = time.monotonic() + timeout_s
    last: dict | None = None
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10) as client:
        while True:
            answer = await client.get(f"/api/calls/{call_sid}", headers={"Authorization": f"Bearer {api_token}"})
            if answer.status_code == 200:
                last = answer.json()
                if last.get("outcome") != "in-progress":
                    return last
            if time.monotonic() > deadline:
                return last
            await asyncio.sleep(0.2)


async def wait_until_ready(base_url: str, timeout_s: float = 120.0) -> None:
    """Poll ``/healthz`` until the server has loaded its models."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                response = await client.get(base_url.rstrip("/") + "/healthz")
                if response.status_code == 200:
                    return
                if response.json().get("status") == "failed":
                    raise RuntimeError("the server failed to load its models (its log, or /api/health, says why)")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f} s")
            await asyncio.sleep(0.25)


class SimulatedCall:
    """One call. ``run`` returns once every turn is spoken and answered (or timed out)."""

    def __init__(
        self,
        base_url: str,
        auth_token: str = "",
        public_url: str | None = None,
        caller: str = "+15005550006",
        called: str = "+15005550001",
        quiet_s: float = 1.0,
        reply_timeout_s: float = 30.0,
        echo: EchoPath | None = None,
        greeting_timeout_s: float | None = None,
        line_noise_dbfs: float | None = None,
        call_sid: str = "",
        account_sid: str = "",
        direction: str = "inbound",
        softphone_token: str | None = None,
    ) -> None:
        """``line_noise_dbfs``: between utterances the line carries hiss at this level instead of
                digital silence, as a real phone line does (a detector's start-up on the first noise after
                silence is then not mistaken for the caller). A call the server placed: its ``call_sid``
                (and ``account_sid``), ``direction="outbound-api"``, ``caller`` the business's number and
                ``called`` the person's. ``softphone_token``: the browser softphone's call instead (``/phone-stream``
        with the API token, no webhook), which may also type turns (``CallerTurn.text``)."""
        self.base_url = base_url.rstrip("/")
        self.public_url = (public_url or base_url).rstrip("/")
        self.auth_token = auth_token
        self.caller = caller
        self.called = called
        self.quiet_s = quiet_s
        self.reply_timeout_s = reply_timeout_s
        self.echo = echo
        self.greeting_timeout_s = greeting_timeout_s or reply_timeout_s
        self._line_noise = _line_noise(line_noise_dbfs) if line_noise_dbfs is not None else None
        self._playback: PlaybackBuffer | None = None
        self.call_sid = call_sid or _sid("CA")
        self.account_sid = account_sid or _sid("AC")
        self.direction = direction
        self.softphone_token = softphone_token
        self.stream_sid = _sid("MZ")
        self._seq = 0
        self._chunk = 0
        self._mouth: list[_Utterance] = []
        self._last_media_at = 0.0
        self._media_count = 0
        self._counts: dict[str, int] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closed = asyncio.Event()
        self._peer_close_code: int | None = None  # the code in the server's close frame, if it closed first
        self._dropped = False  # the connection ended without a close frame
        self._hanging_up = False
        self._started = 0.0
        self._clock = time.monotonic
        self.max_send_lateness_s = 0.0  # how late this simulator sent a frame (its own overload)
        self.hang_up_at: float | None = None  # monotonic time after which no new turn is started
        self._ended_by_twilio = asyncio.Event()

    # -- the webhook -----------------------------------------------------------------------------
    async def answer(self, client: httpx.AsyncClient) -> tuple[str, str, dict[str, str]]:
        if self.softphone_token is not None:  # the browser's call: no webhook, the token in ``start``
            return "", self.public_url + "/phone-stream", {"token": self.softphone_token, "From": "softphone"}
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "ringing" if self.direction == "inbound" else "in-progress",
            "Called": self.called,
            "Caller": self.caller,
            "Direction": self.direction,
            "From": self.caller,
            "To": self.called,
            "CallerCity": "",
        }
        url = self.public_url + "/voice-stream"
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, params)} if self.auth_token else {}
        response = await client.post(self.base_url + "/voice-stream", data=params, headers=headers)
        response.raise_for_status()
        root = ET.fromstring(response.text)
        stream = root.find("./Connect/Stream")
        if stream is None:
            raise RuntimeError(f"no <Connect><Stream> in TwiML: {response.text}")
        custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return response.text, stream.get("url", ""), custom

    def _connect_url(self, stream_url: str) -> str:
        """Where to open the socket: the TwiML URL, re-pointed at the server under test."""
        target = urlsplit(self.base_url)
        parts = urlsplit(stream_url)
        scheme = "wss" if target.scheme == "https" else "ws"
        return urlunsplit((scheme, target.netloc, parts.path, "", ""))

    # -- sending ---------------------------------------------------------------------------------
    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    @property
    def _socket(self) -> aiohttp.ClientWebSocketResponse:
        assert self._ws is not None, "the stream is not open"
        return self._ws

    async def _send(self, message: dict) -> None:
        await self._socket.send_str(json.dumps(message, separators=(",", ":")))

    def _echo_mark(self, name: str) -> None:
        message = {
            "event": "mark",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        }
        asyncio.get_running_loop().create_task(self._send(message))

    def speak(self, pcm: np.ndarray) -> asyncio.Future:
        """Queue speech; the future resolves with (first frame time, last frame time)."""
        ulaw = mulaw.encode(pcm)
        frames = [
            base64.b64encode(ulaw[i : i + FRAME_SAMPLES].ljust(FRAME_SAMPLES, b"\xff")).decode("ascii")
            for i in range(0, len(ulaw), FRAME_SAMPLES)
        ]
        utterance = _Utterance(frames, asyncio.get_running_loop().create_future())
        if self.echo is not None:
            padded = mulaw.decode(ulaw)
            utterance.pcm = np.concatenate([padded, np.zeros(-padded.size % FRAME_SAMPLES, dtype=np.int16)])
        self._mouth.append(utterance)
        return utterance.done

    async def _send_audio(self) -> None:
        """A frame every 20 ms on an absolute schedule, as a phone line delivers them."""
        tick = 0
        start = self._clock()
        ws = self._socket
        while True:
            utterance = self._mouth[0] if self._mouth else None
            payload = utterance.frames[utterance.sent] if utterance else SILENCE_PAYLOAD
            if utterance is None and self._line_noise is not None:
                payload = self._line_noise[1][tick % len(self._line_noise[1])]
            if self.echo is not None:
                payload = self._with_echo(utterance, start + tick * FRAME_S, tick)
            self._chunk += 1
            self._seq += 1
            await ws.send_str(MEDIA_TEMPLATE % (self._seq, self._chunk, 120 + tick * 20, payload, self.stream_sid))
            late = self._clock() - (start + tick * FRAME_S)
            if late > self.max_send_lateness_s:
                self.max_send_lateness_s = late
            if utterance is not None:
                utterance.frame_sent(self._clock())
                if utterance.finished:
                    self._mouth.pop(0)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * FRAME_S - self._clock()))

    def _with_echo(self, utterance: _Utterance | None, at: float, tick: int) -> str:
        """The frame the microphone picks up at ``at``: the caller's voice plus the agent's echo."""
        assert self.echo is not None
        if utterance is not None and utterance.pcm is not None:
            start = utterance.sent * FRAME_SAMPLES
            voice = utterance.pcm[start : start + FRAME_SAMPLES].astype(np.float32)
        elif self._line_noise is not None:
            voice = self._line_noise[0][tick % len(self._line_noise[0])].astype(np.float32)
        else:
            voice = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        if self._playback is not None:
            heard_at = at - self.echo.delay_ms / 1000
            echo = self._playback.heard(heard_at, heard_at + FRAME_S)[:FRAME_SAMPLES].astype(np.float32)
            voice[: echo.size] += echo * 10 ** (self.echo.gain_db / 20)
        pcm = np.clip(voice, -32768, 32767).astype(np.int16)
        return base64.b64encode(mulaw.encode(pcm)).decode("ascii")

    # -- receiving -------------------------------------------------------------------------------
    async def _receive(self, playback: PlaybackBuffer) -> None:
        try:
            await self._receive_until_closed(playback)
        finally:
            self._closed.set()

    async def _receive_until_closed(self, playback: PlaybackBuffer) -> None:
        ws = self._socket
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                self._counts["binary"] = self._counts.get("binary", 0) + 1
                continue
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self._ended(msg)
                return
            message = orjson.loads(msg.data)
            event = message.get("event", "?")
            self._counts[event] = self._counts.get(event, 0) + 1
            if event == "media":
                playback.on_media(base64.b64decode(message["media"]["payload"]))
                self._last_media_at = self._clock()
                self._media_count += 1
            elif event == "mark":
                playback.on_mark(message["mark"]["name"])
            elif event == "clear":
                playback.on_clear()

    def _ended(self, msg: aiohttp.WSMessage) -> None:
        """Note how the server ended the stream (CLOSE: its close frame; CLOSED: the TCP connection
        went away without one; CLOSING: this caller is hanging up; ERROR: a protocol error, such as an
        oversized message, which aiohttp has answered with its own close)."""
        if msg.type is aiohttp.WSMsgType.CLOSE:
            self._peer_close_code = msg.data or NO_STATUS_RECEIVED
        elif msg.type is aiohttp.WSMsgType.CLOSED and not self._hanging_up:
            self._dropped = True

    def _close_code(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """The code of the server's close frame: sent first, or in reply to this caller's."""
        if self._peer_close_code is not None:
            return self._peer_close_code
        if self._dropped:
            return ABNORMAL_CLOSURE
        return ws.close_code or (NO_STATUS_RECEIVED if ws.closed else None)

    async def _agent_done(self, playback: PlaybackBuffer, since_media: int, timeout_s: float | None = None) -> None:
        """Wait until a reply has arrived, played out, and the line stayed quiet for ``quiet_s``."""
        timeout_s = timeout_s or self.reply_timeout_s
        deadline = self._clock() + timeout_s
        while self._clock() < deadline and not self._closed.is_set():
            quiet_for = self._clock() - max(self._last_media_at, playback.ends_at)
            if self._media_count > since_media and not playback.playing and quiet_for >= self.quiet_s:
                return
            await asyncio.sleep(0.05)  # latency comes from playback timestamps, not from this poll
        if not self._closed.is_set():
            log.warning("no complete reply within %.0f s", timeout_s)

    # -- the call --------------------------------------------------------------------------------
    async def run(
        self,
        turns: list[CallerTurn],
        client: httpx.AsyncClient | None = None,
        linger_s: float = 0.0,
        session: aiohttp.ClientSession | None = None,
    ) -> CallResult:
        """Speak each turn and wait for its reply; then stay on the line, silent, for ``linger_s``
        (or until the server hangs up), and hang up with ``stop``.

        ``client`` (httpx) posts the webhook; ``session`` (see ``stream_session``) opens the media
        stream. Either is made for this call, and closed after it, when not given."""
        own_client = client is None
        client = client or httpx.AsyncClient(timeout=30)
        try:
            twiml, stream_url, custom = await self.answer(client)
        finally:
            if own_client:
                await client.aclose()
        headers = {"User-Agent": USER_AGENT}
        if self.auth_token and self.softphone_token is None:
            headers["X-Twilio-Signature"] = sign(self.auth_token, stream_url)
        own_session = session is None
        session = session or stream_session()
        try:
            # compress=0: Twilio asks for no permessage-deflate. No heartbeat: Twilio's pings are not
            # documented, and the server must not depend on them.
            ws = await asyncio.wait_for(
                session.ws_connect(
                    self._connect_url(stream_url),
                    headers=headers,
                    compress=0,
                    max_msg_size=2**20,
                    autoping=True,
                    autoclose=True,
                    heartbeat=None,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
                ),
                OPEN_TIMEOUT_S,
            )
            return await self._stream(ws, twiml, custom, turns, linger_s)
        finally:
            if own_session:
                await session.close()

    async def _stream(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        twiml: str,
        custom: dict[str, str],
        turns: list[CallerTurn],
        linger_s: float,
    ) -> CallResult:
        try:
            self._ws = ws
            self._started = self._clock()
            playback = PlaybackBuffer(self._clock, self._echo_mark)
            self._playback = playback
            await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await self._send(
                {
                    "event": "start",
                    "sequenceNumber": self._next_seq(),
                    "start": {
                        "accountSid": self.account_sid,
                        "streamSid": self.stream_sid,
                        "callSid": self.call_sid,
                        "tracks": ["inbound"],
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                        "customParameters": custom,
                    },
                    "streamSid": self.stream_sid,
                }
            )
            receiver = asyncio.create_task(self._receive(playback))
            sender = asyncio.create_task(self._send_audio())
            results: list[TurnResult] = []
            try:
                greeting_end = None
                greeting_audible = None
                if not turns or turns[0].barge_in_after_s is None:
                    await self._agent_done(playback, 0, self.greeting_timeout_s)
                    greeting_audible = playback.first_audible_after(self._started)
                    greeting_end = playback.ends_at
                for turn in turns:
                    if self._closed.is_set() or (self.hang_up_at is not None and self._clock() >= self.hang_up_at):
                        break
                    results.append(await self._play_turn(turn, playback))
                    if greeting_audible is None:
                        greeting_audible = playback.first_audible_after(self._started)
                if linger_s:
                    ended = [
                        asyncio.ensure_future(self._closed.wait()),
                        asyncio.ensure_future(self._ended_by_twilio.wait()),
                    ]
                    await asyncio.wait(ended, timeout=linger_s, return_when=asyncio.FIRST_COMPLETED)
                    for waiting in ended:
                        waiting.cancel()
                if self._closed.is_set():
                    await asyncio.sleep(max(0.0, playback.ends_at - self._clock()))  # let queued audio play out
                else:
                    await self._send(
                        {
                            "event": "stop",
                            "sequenceNumber": self._next_seq(),
                            "streamSid": self.stream_sid,
                            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                        }
                    )
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                self._hanging_up = True
                await ws.close()
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        finally:
            self._hanging_up = True
            await ws.close()  # no-op once closed; here for a failure before the tasks started
        return CallResult(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            twiml=twiml,
            started=self._started,
            greeting_audible_at=greeting_audible,
            greeting_end=greeting_end,
            turns=results,
            playback=playback,
            close_code=self._close_code(ws),
            messages_received=dict(self._counts),
        )

    def end_call(self) -> None:
        """What Twilio does to the stream when the call is ended over REST: no more turns, then
        ``stop`` and the socket closed."""
        self.hang_up_at = self._clock()
        self._ended_by_twilio.set()

    async def _play_turn(self, turn: CallerTurn, playback: PlaybackBuffer) -> TurnResult:
        if turn.barge_in_after_s is not None:
            while (first := playback.first_audible_after(self._started)) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the playback model is a buffer, not an event source
            await asyncio.sleep(max(0.0, first + turn.barge_in_after_s - self._clock()))
        if turn.text:
            await self._send({"event": "voxline.text", "streamSid": self.stream_sid, "text": turn.text})
            start = end = self._clock()
        elif turn.dtmf:
            for digit in turn.dtmf:
                await self._send(
                    {
                        "event": "dtmf",
                        "streamSid": self.stream_sid,
                        "sequenceNumber": self._next_seq(),
                        "dtmf": {"track": "inbound_track", "digit": digit},
                    }
                )
            start = end = self._clock()
        else:
            start, end = await self.speak(turn.audio)
        # Counted from the end of the caller's words: audio of an earlier reply that arrived while the
        # caller was talking over it (a barge-in) is not this turn's reply.
        media_before = self._media_count
        result = TurnResult(label=turn.label, speech_start=start, speech_end=end)
        await self._agent_done(playback, media_before)
        result.reply_audible_at = playback.first_audible_after(end)
        result.reply_end = playback.ends_at
        result.clear_at = next((c for c in playback.clears if c >= start), None)
        log.info(
            "turn %r: latency %s",
            turn.label,
            "none" if result.latency_s is None else f"{result.latency_s * 1000:.0f} ms",
        )
        return result
