"""Hosted text-to-speech: ElevenLabs (asked for ``ulaw_8000``, so no transcoding at all) and the
OpenAI-compatible speech endpoint (raw 24 kHz PCM, resampled here).

ElevenLabs: ``POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`` with the
``xi-api-key`` header and ``{"text", "model_id"}``; the body is raw 8 kHz μ-law.
OpenAI: ``POST {base}/audio/speech`` with ``{"model", "input", "voice", "response_format": "pcm"}``;
the body is 24 kHz signed 16-bit little-endian mono.
"""

from __future__ import annotations

import aiohttp
import numpy as np

from voxline.providers.http import HostedEndpoint, bearer
from voxline.tts.shaping import to_telephony

OPENAI_PCM_RATE = 24000


class ElevenLabsTTS:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        voice_id: str,
        model: str,
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.name = f"elevenlabs:{voice_id}"
        self._endpoint = HostedEndpoint(
            client,
            "elevenlabs",
            f"{base_url.rstrip('/')}/v1/text-to-speech/{voice_id}/stream",
            {"xi-api-key": api_key},
            timeout_s,
            retry_window_s,
        )
        self._model = model

    async def synthesize(self, text: str) -> bytes:
        if not text.strip():
            return b""
        response = await self._endpoint.post(
            params={"output_format": "ulaw_8000"}, json={"text": text, "model_id": self._model}
        )
        return response.body  # already 8 kHz μ-law; the pacer pads the last frame


class OpenAICompatibleTTS:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        model: str,
        voice: str,
        provider: str = "openai",
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.name = f"{provider}:{model}:{voice}"
        self._endpoint = HostedEndpoint(
            client, provider, base_url.rstrip("/") + "/audio/speech", bearer(api_key), timeout_s, retry_window_s
        )
        self._model = model
        self._voice = voice

    async def synthesize(self, text: str) -> bytes:
        if not text.strip():
            return b""
        response = await self._endpoint.post(
            json={"model": self._model, "input": text, "voice": self._voice, "response_format": "pcm"}
        )
        pcm = np.frombuffer(response.body[: len(response.body) // 2 * 2], dtype="<i2").astype(np.int16)
        return to_telephony(pcm, OPENAI_PCM_RATE)
