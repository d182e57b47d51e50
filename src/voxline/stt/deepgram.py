"""Deepgram's live transcription over its WebSocket API, one socket per call.

``wss://api.deepgram.com/v1/listen?encoding=mulaw&sample_rate=8000&channels=1&…`` with the
``Authorization: Token <key>`` header. The caller's μ-law frames go in as binary messages exactly
as Twilio delivered them (no transcoding); Deepgram answers with JSON: ``Results`` (the text in
``channel.alternatives[0].transcript``, ``is_final`` once a segment will not change,
``speech_final`` at its endpoint, ``from_finalize`` when it answers our ``Finalize``),
``UtteranceEnd`` (a gap of ``utterance_end_ms`` after the last word), ``SpeechStarted`` and
``Metadata``. Client messages are ``{"type": "KeepAlive"}``, ``{"type": "Finalize"}`` and
``{"type": "CloseStream"}``.

Why a socket per call, transcribing as the caller talks: when our silence window notices the end
of speech, Deepgram has already heard everything but the last few hundred milliseconds. We send
``Finalize`` and the final text comes back in about one round trip. Deepgram's own endpoint
(``speech_final``) or ``UtteranceEnd`` may end the turn even sooner.

A dropped or refused socket is reconnected with backoff; the audio of the utterance so far is
kept (bounded) and replayed into the new socket, so a short outage costs no words. Only when no
socket could be had within ``retry_window_s`` does ``finalize`` raise ``ProviderError``. The key
is sent in a header and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voxline.audio import mulaw
from voxline.errors import ProviderError
from voxline.providers.http import RETRYABLE_STATUS

log = logging.getLogger(__name__)

PROVIDER = "deepgram"
KEEPALIVE_S = 5.0  # Deepgram closes a socket that gets no audio or KeepAlive for 10 s
MAX_BUFFER_S = 30.0  # audio held while (re)connecting (240 KB); older audio is dropped
MAX_REPLAY_S = 30.0  # the utterance kept for replay after a reconnection
REPLAY_CHUNK = 3200  # replayed in 400 ms messages


def websocket_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    return base


class DeepgramStream:
    """One live socket (re-opened as needed) and the text of the current utterance."""

    def __init__(
        self,
        url: str,
        api_key: str,
        name: str,
        *,
        retry_window_s: float,
        connect_timeout_s: float,
        finalize_timeout_s: float,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.name = name
        self.on_end_of_speech: Callable[[], None] | None = None
        self._url = url
        self._headers = {"Authorization": f"Token {api_key}"}
        self._retry_window_s = retry_window_s
        self._connect_timeout_s = connect_timeout_s
        self._finalize_timeout_s = finalize_timeout_s
        self._keepalive_s = keepalive_s
        self._audio: deque[bytes] = deque()
        self._audio_bytes = 0
        self._controls: deque[str] = deque()
        self._replay = bytearray()
        self._wakeup = asyncio.Event()
        self._finals: list[str] = []
        self._interim = ""
        self._waiters: list[asyncio.Future[None]] = []
        self._ws: ClientConnection | None = None
        self._failed_since: float | None = None
        self.error: ProviderError | None = None  # why the last attempt to connect failed
        self.fatal: ProviderError | None = None  # refused for good (bad key, bad request): no more tries
        self.connections = 0
        self._closed = False
        self._task = asyncio.create_task(self._run(), name=f"{name}-socket")

    # -- the session's side ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    def send(self, ulaw: bytes) -> None:
        if self._closed or self.fatal is not None:
            return
        self._audio.append(ulaw)
        self._audio_bytes += len(ulaw)
        while self._audio_bytes > MAX_BUFFER_S * 8000:
            self._audio_bytes -= len(self._audio.popleft())
        self._replay.extend(ulaw)
        if len(self._replay) > MAX_REPLAY_S * 8000:
            del self._replay[: len(self._replay) - int(MAX_REPLAY_S * 8000)]
        self._wakeup.set()

    def transcript(self) -> str:
        """What was heard since the last ``reset``, the words still being decided included."""
        return " ".join(t for t in (*self._finals, self._interim) if t)

    def reset(self) -> None:
        """The turn was taken: the next utterance starts from here."""
        self._finals.clear()
        self._interim = ""
        self._replay.clear()

    async def finalize(self) -> str:
        """Flush Deepgram's buffer and return the utterance's final text."""
        if self.fatal is not None:
            raise self.fatal
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._controls.append(json.dumps({"type": "Finalize"}))
        self._wakeup.set()
        started, socket = time.monotonic(), self.connections
        limit = self._finalize_timeout_s + self._retry_window_s + self._connect_timeout_s
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), self._finalize_timeout_s)
                    break
                except TimeoutError:
                    if self.connected and self.connections == socket:
                        # Connected but no from_finalize answer (none comes when nothing was buffered).
                        log.warning(
                            "%s: no answer to Finalize in %.1f s; using what was final",
                            self.name,
                            self._finalize_timeout_s,
                        )
                        break
                    if time.monotonic() - started > limit:
                        raise self.error or ProviderError(PROVIDER, "timeout", "no transcript in time") from None
                    socket = self.connections  # a new socket: it gets its own time to answer
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return " ".join(t for t in (*self._finals, self._interim) if t)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.send(json.dumps({"type": "CloseStream"})), 1.0)
            except (ConnectionClosed, TimeoutError, OSError):
                pass
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if ws is not None:
            await ws.close()

    # -- the socket ----------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.2
        while not self._closed:
            try:
                ws = await connect(
                    self._url,
                    additional_headers=self._headers,
                    open_timeout=self._connect_timeout_s,
                    ping_interval=None,
                    compression=None,
                    max_size=2**20,
                    proxy=None,
                    close_timeout=2,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                self._connect_failed(
                    ProviderError(PROVIDER, str(status), _refusal(exc)), fatal=status not in RETRYABLE_STATUS
                )
            except TimeoutError:
                self._connect_failed(ProviderError(PROVIDER, "timeout", "the WebSocket handshake timed out"))
            except (OSError, InvalidHandshake) as exc:
                self._connect_failed(ProviderError(PROVIDER, "connection", type(exc).__name__))
            else:
                delay = 0.2
                request_id = ws.response.headers.get("dg-request-id") if ws.response else None
                log.info("%s: connected (request %s)", self.name, request_id or "?")
                await self._serve(ws)
                continue
            if self.fatal is not None:
                return
            log.warning("%s; retrying in %.1f s", self.error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _connect_failed(self, error: ProviderError, fatal: bool = False) -> None:
        self.error = error
        now = time.monotonic()
        if self._failed_since is None:
            self._failed_since = now
        if fatal:
            self.fatal = error
        if fatal or now - self._failed_since >= self._retry_window_s:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(error)

    async def _serve(self, ws: ClientConnection) -> None:
        self.connections += 1
        if self._failed_since is not None or self.connections > 1:
            # A new socket after a failure: it hears the utterance again from its start.
            log.info("%s: connected again; replaying %d ms of the utterance", self.name, len(self._replay) // 8)
            self._audio.clear()
            self._audio_bytes = 0
            for start in range(0, len(self._replay), REPLAY_CHUNK):
                self._audio.append(bytes(self._replay[start : start + REPLAY_CHUNK]))
            self._audio_bytes = len(self._replay)
            self._finals.clear()
            self._interim = ""
            if any(not waiter.done() for waiter in self._waiters):
                self._controls.append(json.dumps({"type": "Finalize"}))  # the one sent before was lost
        self._failed_since = None
        self.error = None
        self._ws = ws
        sender = asyncio.create_task(self._send_loop(ws))
        try:
            await self._receive_loop(ws)
        finally:
            self._ws = None
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        if not self._closed:
            code = ws.close_code
            self.error = ProviderError(
                PROVIDER, "connection", f"socket closed ({code} {ws.close_reason or ''})".strip()
            )
            self._failed_since = time.monotonic()
            log.warning("%s", self.error)

    async def _send_loop(self, ws: ClientConnection) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._keepalive_s)
                except TimeoutError:
                    await ws.send(json.dumps({"type": "KeepAlive"}))
                    continue
                self._wakeup.clear()
                while self._audio:
                    chunk = self._audio.popleft()
                    self._audio_bytes -= len(chunk)
                    await ws.send(chunk)
                while self._controls:
                    await ws.send(self._controls.popleft())
        except ConnectionClosed:
            pass

    async def _receive_loop(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    self._on_message(raw)
        except ConnectionClosed:
            pass

    def _on_message(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("%s: not JSON: %.100s", self.name, raw)
            return
        kind = message.get("type")
        if kind == "Results":
            alternatives = (message.get("channel") or {}).get("alternatives") or [{}]
            text = str(alternatives[0].get("transcript", "")).strip()
            if message.get("is_final"):
                if text:
                    self._finals.append(text)
                self._interim = ""
            else:
                self._interim = text
            if message.get("from_finalize"):
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            if message.get("speech_final") and self._finals:
                self._end_of_speech("speech_final")
        elif kind == "UtteranceEnd":
            if self._finals:
                self._end_of_speech("UtteranceEnd")
        elif kind == "Metadata":
            log.info("%s: request %s", self.name, message.get("request_id"))
        elif kind not in ("SpeechStarted",):
            log.info("%s: message %s", self.name, kind)

    def _end_of_speech(self, why: str) -> None:
        if self.on_end_of_speech is not None:
            log.debug("%s: end of speech (%s)", self.name, why)
            self.on_end_of_speech()


def _refusal(exc: InvalidStatus) -> str:
    """Deepgram's reason for refusing the handshake: the ``dg-error`` header or the JSON body."""
    response = exc.response
    reason = response.headers.get("dg-error", "")
    try:
        body = json.loads(response.body or b"{}")
        reason = body.get("err_msg") or body.get("message") or reason
    except (ValueError, AttributeError):
        pass
    reason = reason or response.reason_phrase
    request_id = response.headers.get("dg-request-id")
    return f"{reason} (request {request_id})" if request_id else reason


class DeepgramSTT:
    """Opens live sockets; ``transcribe`` (for whole recordings) streams one utterance through one."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        endpointing_ms: int = 200,
        utterance_end_ms: int = 1000,
        retry_window_s: float = 3.0,
        connect_timeout_s: float = 5.0,
        finalize_timeout_s: float = 1.5,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.name = f"deepgram:{model}"
        self._base = websocket_base(base_url) + "/v1/listen"
        self._api_key = api_key
        self._model = model
        self._endpointing_ms = endpointing_ms
        self._utterance_end_ms = utterance_end_ms
        self._retry_window_s = retry_window_s
        self._connect_timeout_s = connect_timeout_s
        self._finalize_timeout_s = finalize_timeout_s
        self._keepalive_s = keepalive_s

    def url(self, language: str) -> str:
        query = {
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "model": self._model,
            "interim_results": "true",
            "endpointing": self._endpointing_ms,
            "utterance_end_ms": self._utterance_end_ms,
            "vad_events": "true",
            "smart_format": "true",
        }
        if language:
            query["language"] = language
        return f"{self._base}?{urlencode(query)}"

    def open(self, language: str) -> DeepgramStream:
        return DeepgramStream(
            self.url(language),
            self._api_key,
            self.name,
            retry_window_s=self._retry_window_s,
            connect_timeout_s=self._connect_timeout_s,
            finalize_timeout_s=self._finalize_timeout_s,
            keepalive_s=self._keepalive_s,
        )

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        stream = self.open(language)
        try:
            stream.send(mulaw.encode(pcm8k))
            return await stream.finalize()
        finally:
            await stream.close()
