"""A local server speaking ElevenLabs' streaming text-to-speech API.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`` with the ``xi-api-key``
header and ``{"text", "model_id"}`` answers raw 8 kHz μ-law, in chunks. Errors use the API's
``{"detail": {"status", "message"}}`` body. ``mode``: ok, unauthorized, rate-limited-once.
"""

from __future__ import annotations

import asyncio

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from voxline.audio import mulaw
from voxline.simulator.loopback import LoopbackServer

API_KEY = "xi-test-abcdef"


class FakeElevenLabs(LoopbackServer):
    def __init__(self) -> None:
        self.mode = "ok"
        self.speech = np.zeros(0, dtype=np.int16)  # 8 kHz int16, set by the test
        self.requests: list[dict] = []
        app = Starlette(routes=[Route("/v1/text-to-speech/{voice_id}/stream", self._stream, methods=["POST"])])
        super().__init__(app)
        self.base_url = self.url

    async def _stream(self, request: Request):
        body = await request.json()
        self.requests.append(
            {
                "voice_id": request.path_params["voice_id"],
                "query": dict(request.query_params),
                "body": body,
                "key": request.headers.get("xi-api-key"),
            }
        )
        if request.headers.get("xi-api-key") != API_KEY or self.mode == "unauthorized":
            return JSONResponse(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status_code=401
            )
        if self.mode == "rate-limited-once" and len(self.requests) == 1:
            return JSONResponse(
                {"detail": {"status": "too_many_concurrent_requests", "message": "Too many concurrent requests"}},
                status_code=429,
            )
        if request.query_params.get("output_format") != "ulaw_8000":
            return JSONResponse(
                {"detail": {"status": "invalid_output_format", "message": "bad format"}}, status_code=400
            )
        audio = mulaw.encode(self.speech)

        async def chunks():
            for i in range(0, len(audio), 1024):
                yield audio[i : i + 1024]
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="audio/basic")
