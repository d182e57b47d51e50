"""Hosted speech-to-text through the OpenAI-compatible transcription endpoint.

``POST {base_url}/audio/transcriptions`` (multipart: ``file``, ``model``, ``language``,
``response_format=json``) answers ``{"text": …}``. OpenAI, Groq and self-hosted faster-whisper
servers speak it. The utterance is sent as an 8 kHz 16-bit WAV, as the phone line delivered it.
"""

from __future__ import annotations

import httpx
import numpy as np

from voxline.audio import mulaw
from voxline.playout.audio_files import wav_bytes
from voxline.providers.http import request_with_retries


class OpenAICompatibleSTT:
    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str, model: str,
                 provider: str = "openai", timeout_s: float = 10.0, retry_window_s: float = 3.0) -> None:
        self.name = f"{provider}:{model}"
        self._client = client
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._provider = provider
        self._timeout_s = timeout_s
        self._retry_window_s = retry_window_s

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        wav = wav_bytes(mulaw.encode(pcm8k))
        response = await request_with_retries(
            self._client, self._provider, "POST", self._url, timeout_s=self._timeout_s,
            retry_window_s=self._retry_window_s, headers=self._headers,
            data={"model": self._model, "language": language, "response_format": "json"},
            files={"file": ("turn.wav", wav, "audio/wav")})
        return str(response.json().get("text", "")).strip()
