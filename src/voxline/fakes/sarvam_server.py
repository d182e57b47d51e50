"""A local server speaking Sarvam's REST speech APIs.

``POST /speech-to-text`` (multipart ``file``, ``model``, ``language_code``; header
``api-subscription-key``) answers ``{"request_id", "transcript", "language_code"}``;
``POST /text-to-speech`` (JSON ``text``, ``target_language_code``, ``speaker``, ``model``,
``speech_sample_rate``) answers ``{"request_id", "audios": [base64 WAV]}`` at the asked rate.
Errors use the API's ``{"error": {"message", "code", "request_id"}}`` body. ``mode``: ok,
unauthorized (401), rate-limited-once (429 then ok), server-error (always 503), slow (answers
after ``slow_s``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
import wave

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voxline.audio.pcm import resample
from voxline.simulator.loopback import LoopbackServer

API_KEY = "sarvam-test-0123456789"
RATES = (8000, 16000, 22050, 24000)


class FakeSarvam(LoopbackServer):
    def __init__(self, transcript: str = "शनिवार को आप कितने बजे खुलते हैं?") -> None:
        self.transcript = transcript
        self.mode = "ok"
        self.slow_s = 5.0
        self.speech = np.zeros(0, dtype=np.int16)  # 8 kHz int16, set by the test
        self.requests: list[dict] = []
        app = Starlette(
            routes=[
                Route("/speech-to-text", self._stt, methods=["POST"]),
                Route("/text-to-speech", self._tts, methods=["POST"]),
            ]
        )
        super().__init__(app)
        self.base_url = self.url

    async def _refusal(self, request: Request) -> JSONResponse | None:
        if request.headers.get("api-subscription-key") != API_KEY or self.mode == "unauthorized":
            return _error(
                403 if request.headers.get("api-subscription-key") is None else 401,
                "Invalid API key",
                "invalid_api_key_error",
            )
        if self.mode == "rate-limited-once" and len(self.requests) == 1:
            return _error(429, "Rate limit exceeded", "rate_limit_exceeded_error")
        if self.mode == "server-error":
            return _error(503, "Service is temporarily unavailable", "internal_server_error")
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        return None

    async def _stt(self, request: Request):
        form = await request.form()
        upload = form.get("file")
        audio = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        self.requests.append(
            {
                "path": "speech-to-text",
                "model": form.get("model"),
                "language_code": form.get("language_code"),
                "audio": audio,
                "key": request.headers.get("api-subscription-key"),
            }
        )
        if (refused := await self._refusal(request)) is not None:
            return refused
        if not audio.startswith(b"RIFF"):
            return _error(400, "Invalid audio file format", "invalid_request_error")
        language = form.get("language_code") or "unknown"
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "transcript": self.transcript,
                "language_code": "hi-IN" if language == "unknown" else language,
            }
        )

    async def _tts(self, request: Request):
        body = await request.json()
        self.requests.append(
            {"path": "text-to-speech", "body": body, "key": request.headers.get("api-subscription-key")}
        )
        if (refused := await self._refusal(request)) is not None:
            return refused
        if not body.get("text") or not body.get("target_language_code"):
            return _error(400, "text and target_language_code are required", "invalid_request_error")
        rate = int(body.get("speech_sample_rate", 22050))
        if rate not in RATES:
            return _error(422, f"speech_sample_rate must be one of {RATES}", "invalid_request_error")
        samples = resample(self.speech, 8000, rate) if rate != 8000 else self.speech
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.astype("<i2").tobytes())
        return JSONResponse(
            {"request_id": str(uuid.uuid4()), "audios": [base64.b64encode(buffer.getvalue()).decode("ascii")]}
        )


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "code": code, "request_id": str(uuid.uuid4())}}, status_code=status
    )
