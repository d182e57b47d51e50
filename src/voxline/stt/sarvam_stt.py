"""Hosted speech-to-text for Indian languages: Sarvam's REST ``speech-to-text`` (saarika models).

``POST {base}/speech-to-text`` with the ``api-subscription-key`` header, multipart ``file`` (a WAV),
``model`` (e.g. ``saarika:v2.5``) and ``language_code`` (``hi-IN``, ``ta-IN``…, or ``unknown`` to
detect it) answers ``{"request_id", "transcript", "language_code"}``. Saarika is trained for 8 kHz
telephony audio, so the utterance is sent as the phone line delivered it: an 8 kHz 16-bit WAV.
"""

from __future__ import annotations

import aiohttp
import numpy as np

from voxline.audio import mulaw
from voxline.audio.wav import wav_bytes
from voxline.providers.http import HostedEndpoint, multipart
from voxline.providers.sarvam import sarvam_language


class SarvamSTT:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.name = f"sarvam:{model}"
        self.multilingual = True
        self._endpoint = HostedEndpoint(
            client,
            "sarvam",
            base_url.rstrip("/") + "/speech-to-text",
            {"api-subscription-key": api_key},
            timeout_s,
            retry_window_s,
        )
        self._model = model

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        wav = wav_bytes(mulaw.encode(pcm8k))
        body, content_type = multipart(
            {"model": self._model, "language_code": sarvam_language(language)}, "file", "turn.wav", "audio/wav", wav
        )
        response = await self._endpoint.post(data=body, headers={"Content-Type": content_type})
        return str(response.json().get("transcript", "")).strip()
