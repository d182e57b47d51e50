"""Hosted speech-to-text through the OpenAI-compatible transcription endpoint.

``POST {base_url}/audio/transcriptions`` (multipart: ``file``, ``model``, ``language``,
``response_format=json``) answers ``{"text": …}``. OpenAI, Groq and self-hosted faster-whisper
servers speak it. The utterance is sent as an 8 kHz 16-bit WAV, as the phone line delivered it.
"""

from __future__ import annotations

import aiohttp
import numpy as np

from voxline.audio import mulaw
from voxline.audio.wav import wav_bytes
from voxline.providers.http import HostedEndpoint, bearer, multipart


class OpenAICompatibleSTT:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        model: str,
        provider: str = "openai",
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.name = f"{provider}:{model}"
        self._endpoint = HostedEndpoint(
            client, provider, base_url.rstrip("/") + "/audio/transcriptions", bearer(api_key), timeout_s, retry_window_s
        )
        self._model = model

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        wav = wav_bytes(mulaw.encode(pcm8k))
        # The multipart body is encoded once, here, and sent as one piece (one write), not a
        # write per part header, value and boundary.
        body, content_type = multipart(
            {"model": self._model, "language": language, "response_format": "json"},
            "file",
            "turn.wav",
            "audio/wav",
            wav,
        )
        response = await self._endpoint.post(data=body, headers={"Content-Type": content_type})
        return str(response.json().get("text", "")).strip()
