"""A local server speaking the OpenAI chat completions streaming protocol (server-sent events).

Chunks follow the public API's format: ``data: {"id": …, "object": "chat.completion.chunk",
"choices": [{"index": 0, "delta": {…}, "finish_reason": …}]}`` lines, then ``data: [DONE]``.
Errors use the API's ``{"error": {"message", "type", "code"}}`` body. ``mode`` picks a behaviour:
ok, unauthorized (401), rate-limited-once (429 then ok), server-error (always 500), slow (answers
after ``slow_s``), drop (closes the stream half-way, without [DONE]), tool-call (a few words, then a
streamed function call ``tool_name`` with ``tool_arguments``, its JSON cut into pieces as the API
sends it, and ``finish_reason: tool_calls``), tools (as a model that uses its tools: to a request
with ``tools`` whose last message is the caller's, the call ``tool_name`` with ``tool_arguments``
and no words; after the tool's answer, ``reply``).

It also answers ``/v1/audio/transcriptions`` (multipart in, ``{"text"}`` out) with ``transcript``,
and ``/v1/audio/speech`` (``response_format: pcm``: 24 kHz 16-bit mono) with ``speech`` (real
recorded speech, resampled), the way the hosted API does.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from voxline.audio.pcm import resample
from voxline.simulator.loopback import LoopbackServer

API_KEY = "sk-test-0123456789"


class FakeOpenAI(LoopbackServer):
    def __init__(self, reply: str = "We are open from nine to six, Monday to Friday.") -> None:
        self.reply = reply
        self.mode = "ok"
        self.tool_name = "lookup_booking"
        self.tool_arguments: dict = {"phone": "+15550001111", "day": "Saturday"}
        self.slow_s = 5.0
        self.end_after_done_s = 0.0  # the stream's end arrives this long after [DONE] (a far server)
        self.requests: list[dict] = []
        self.transcript = "What time do you open on Saturday?"
        self.speech = np.zeros(0, dtype=np.int16)  # 8 kHz int16, set by the test
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )
        super().__init__(app)
        self.base_url = f"{self.url}/v1"

    async def _completions(self, request: Request):
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if request.headers.get("authorization") != f"Bearer {API_KEY}" or self.mode == "unauthorized":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if self.mode == "rate-limited-once" and len(self.requests) == 1:
            return _error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded")
        if self.mode == "server-error":
            return _error(500, "The server had an error while processing your request.", "server_error", None)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        return StreamingResponse(self._chunks(body), media_type="text/event-stream")

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_KEY}" and self.mode != "unauthorized"

    async def _transcriptions(self, request: Request):
        form = await request.form()
        upload = form.get("file")
        audio = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        self.requests.append(
            {
                "path": "transcriptions",
                "model": form.get("model"),
                "language": form.get("language"),
                "audio": audio,
                "authorization": request.headers.get("authorization"),
            }
        )
        if not self._authorized(request):
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if not audio.startswith(b"RIFF"):
            return _error(400, "Invalid file format.", "invalid_request_error", None)
        return JSONResponse({"text": self.transcript})

    async def _speech(self, request: Request):
        body = await request.json()
        self.requests.append({"path": "speech", "body": body, "authorization": request.headers.get("authorization")})
        if not self._authorized(request):
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        pcm24k = resample(self.speech, 8000, 24000)
        return Response(pcm24k.astype("<i2").tobytes(), media_type="audio/pcm")

    async def _chunks(self, body: dict):
        model = body["model"]
        created = int(time.time())
        words = self.reply.split(" ")

        def chunk(delta: dict, finish: str | None = None) -> str:
            return (
                "data: "
                + json.dumps(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
                + "\n\n"
            )

        yield chunk({"role": "assistant", "content": ""})
        if self.mode == "tools" and not (body.get("tools") and body["messages"][-1]["role"] == "user"):
            pass  # the tool answered (or none is offered): words
        elif self.mode in ("tool-call", "tools"):
            arguments = json.dumps(self.tool_arguments)
            if self.mode == "tool-call":
                yield chunk({"content": "Let me check."})
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_fake1",
                            "type": "function",
                            "function": {"name": self.tool_name, "arguments": ""},
                        }
                    ]
                }
            )
            for start in range(0, len(arguments), 7):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start : start + 7]}}]})
            yield chunk({}, "tool_calls")
            yield "data: [DONE]\n\n"
            return
        for i, word in enumerate(words):
            if self.mode == "drop" and i == len(words) // 2:
                return
            yield chunk({"content": word if i == 0 else " " + word})
            await asyncio.sleep(0.01)
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
        await asyncio.sleep(self.end_after_done_s)


def _error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)
