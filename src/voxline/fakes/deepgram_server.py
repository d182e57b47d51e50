"""A local server speaking Deepgram's live transcription WebSocket API.

``/v1/listen`` with ``Authorization: Token <key>`` and the live query (``encoding=mulaw``,
``sample_rate=8000``, ``channels=1``, ``interim_results``, ``endpointing``, ``utterance_end_ms``,
``vad_events``, ``model``, ``language``). Binary messages are audio; text messages are
``KeepAlive``, ``Finalize`` and ``CloseStream``. It answers as Deepgram does: ``Metadata`` when the
stream closes; ``SpeechStarted`` when speech starts; interim ``Results`` while the caller talks;
a final ``Results`` with ``speech_final: true`` after ``endpointing`` ms of silence, or with
``from_finalize: true`` when asked to ``Finalize``; ``UtteranceEnd`` after ``utterance_end_ms``.
Time is counted in received audio, so it behaves the same on a loaded machine.

What was said is scripted (``transcripts``, one per utterance, then ``transcript``): the protocol
is what is under test. Energy decides where speech is; an utterance's words all come in its first
final result, and the segments after a pause inside it are empty. Handshake refusals answer the HTTP status
with Deepgram's JSON error body. ``mode``: ok, unauthorized (401), rate-limited (429),
server-error (503), hang (never completes the handshake), drop-once (closes the socket mid-
utterance once), drop (closes mid-utterance, then refuses with 503).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voxline.audio import mulaw
from voxline.audio.pcm import rms_dbfs
from voxline.simulator.loopback import LoopbackServer

API_KEY = "dg-test-0123456789abcdef"
FRAME = 160
SPEECH_DBFS = -40.0


class FakeDeepgram(LoopbackServer):
    def __init__(self, transcript: str = "What time do you open on Saturday?") -> None:
        self.transcript = transcript
        self.transcripts: list[str] = []
        self.mode = "ok"
        self.connections: list[dict] = []  # one per accepted socket: query, audio bytes, control messages
        self.refused = 0
        self.hang_s = 2.0
        app = Starlette(routes=[WebSocketRoute("/v1/listen", self._listen)])
        super().__init__(app)
        self.base_url = self.url.replace("http://", "ws://")

    def _next_text(self) -> str:
        return self.transcripts.pop(0) if self.transcripts else self.transcript

    async def _refuse(self, ws: WebSocket, status: int, message: str) -> None:
        self.refused += 1
        body = {
            "err_code": {401: "INVALID_AUTH", 429: "TOO_MANY_REQUESTS"}.get(status, "INTERNAL_SERVER_ERROR"),
            "err_msg": message,
            "request_id": str(uuid.uuid4()),
        }
        await ws.send_denial_response(
            JSONResponse(body, status_code=status, headers={"dg-error": message, "dg-request-id": body["request_id"]})
        )

    async def _listen(self, ws: WebSocket) -> None:
        if ws.headers.get("authorization") != f"Token {API_KEY}" or self.mode == "unauthorized":
            return await self._refuse(ws, 401, "Invalid credentials.")
        if self.mode == "rate-limited":
            return await self._refuse(ws, 429, "Too many requests. Please try again later.")
        if self.mode == "server-error":
            return await self._refuse(ws, 503, "Service unavailable.")
        if self.mode == "hang":
            await asyncio.sleep(self.hang_s)  # the client's open timeout runs out first
            return
        query = dict(ws.query_params)
        if (query.get("encoding"), query.get("sample_rate"), query.get("channels")) != ("mulaw", "8000", "1"):
            return await self._refuse(ws, 400, "Bad Request: unsupported encoding")
        request_id = str(uuid.uuid4())
        await ws.accept(headers=[(b"dg-request-id", request_id.encode())])
        info = {
            "request_id": request_id,
            "query": query,
            "audio": bytearray(),
            "controls": [],
            "sent": [],
            "sent_at": [],
        }
        self.connections.append(info)
        await _Listener(self, ws, info).run()


class _Listener:
    """One socket's state: where speech is, what has been said, what has been answered."""

    def __init__(self, fake: FakeDeepgram, ws: WebSocket, info: dict) -> None:
        self.fake, self.ws, self.info = fake, ws, info
        query = info["query"]
        self.endpointing_ms = int(query.get("endpointing", "10"))
        self.utterance_end_ms = int(query.get("utterance_end_ms", "0") or 0)
        self.interim = query.get("interim_results") == "true"
        self.vad_events = query.get("vad_events") == "true"
        self.request_id = info["request_id"]
        self.pending = b""
        self.frames = 0  # 20 ms frames received
        self.voiced_run = 0
        self.silence_ms = 0
        self.in_speech = False  # between speech start and its final result
        self.utterance_text = ""
        self.text_given = False  # the utterance's words went out in a final result (later segments are empty)
        self.utterance_open = False  # until a gap of utterance_end_ms (1 s if unset) closes it
        self.words_said = False  # a final with words was sent; UtteranceEnd is owed
        self.segment_start = 0.0

    async def send(self, message: dict) -> None:
        self.info["sent"].append(message)
        self.info["sent_at"].append(time.monotonic())
        await self.ws.send_text(json.dumps(message))

    def results(self, text: str, *, is_final: bool, speech_final: bool = False, from_finalize: bool = False) -> dict:
        now = self.frames * 0.02
        message = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(now - self.segment_start, 3),
            "start": round(self.segment_start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.98 if text else 0.0,
                        "words": [
                            {
                                "word": w.strip(".,?!").lower(),
                                "start": 0.0,
                                "end": 0.0,
                                "confidence": 0.98,
                                "punctuated_word": w,
                            }
                            for w in text.split()
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": "general-nova-3", "version": "fake", "arch": "nova-3"},
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }
        if from_finalize:
            message["from_finalize"] = True
        if is_final:
            self.segment_start = now
        return message

    async def run(self) -> None:
        started = time.time()
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    if await self.on_audio(message["bytes"]):
                        return
                elif message.get("text") is not None:
                    if await self.on_control(json.loads(message["text"])):
                        return
        except WebSocketDisconnect:
            return
        finally:
            self.info["duration_s"] = time.time() - started

    async def on_control(self, control: dict) -> bool:
        kind = control.get("type")
        self.info["controls"].append(kind)
        if kind == "Finalize":
            text = self.take_text()
            await self.send(self.results(text, is_final=True, from_finalize=True))
        elif kind == "CloseStream":
            await self.send(
                {
                    "type": "Metadata",
                    "transaction_key": "deprecated",
                    "request_id": self.request_id,
                    "sha256": "",
                    "created": "",
                    "duration": self.frames * 0.02,
                    "channels": 1,
                    "models": ["00000000-0000-0000-0000-000000000000"],
                    "model_info": {},
                }
            )
            await self.ws.close(1000)
            return True
        return False

    def take_text(self) -> str:
        """The utterance's words, once: a final result for them has now been sent."""
        if not self.in_speech:
            return ""
        self.in_speech = False
        self.words_said = True
        self.silence_ms = 0
        text, self.text_given = ("" if self.text_given else self.utterance_text), True
        return text

    async def on_audio(self, data: bytes) -> bool:
        self.info["audio"].extend(data)
        self.pending += data
        while len(self.pending) >= FRAME:
            frame, self.pending = self.pending[:FRAME], self.pending[FRAME:]
            self.frames += 1
            voiced = rms_dbfs(mulaw.decode(frame)) > SPEECH_DBFS
            if await self.on_frame(voiced):
                return True
        return False

    async def on_frame(self, voiced: bool) -> bool:
        fake = self.fake
        if voiced:
            self.voiced_run += 1
            self.silence_ms = 0
            if not self.in_speech and self.voiced_run >= 3:
                self.in_speech = True
                if not self.utterance_open:  # a new utterance, not a pause inside one
                    self.utterance_text = fake._next_text()
                    self.text_given = False
                    self.utterance_open = True
                if self.vad_events:
                    await self.send(
                        {"type": "SpeechStarted", "channel": [0], "timestamp": round(self.frames * 0.02, 3)}
                    )
            if self.in_speech and fake.mode in ("drop-once", "drop") and self.voiced_run == 25:
                if fake.mode == "drop-once":
                    fake.mode = "ok"
                else:
                    fake.mode = "server-error"
                await self.ws.close(1011, "NET-0000")
                return True
            if self.in_speech and self.interim and not self.text_given and self.voiced_run % 25 == 0:
                words = self.utterance_text.split()
                await self.send(self.results(" ".join(words[: max(1, len(words) // 2)]), is_final=False))
            return False
        self.voiced_run = 0
        self.silence_ms += 20
        if self.in_speech and self.silence_ms >= self.endpointing_ms:
            await self.send(self.results(self.take_text(), is_final=True, speech_final=True))
        elif self.words_said and self.silence_ms >= (self.utterance_end_ms or 1000):
            self.words_said = False
            self.utterance_open = False  # the next speech is a new utterance, with the next scripted words
            if self.utterance_end_ms:
                await self.send(
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.frames * 0.02, 3)}
                )
        return False
