"""Hosted text-to-speech for Indian languages: Sarvam's REST ``text-to-speech`` (bulbul models).

``POST {base}/text-to-speech`` with the ``api-subscription-key`` header and JSON ``{"text",
"target_language_code", "speaker", "model", "speech_sample_rate": 8000}`` answers
``{"request_id", "audios": ["<base64 WAV>"]}``. Asking for 8 kHz means the WAV is already at the
phone's rate; it is only trimmed and μ-law encoded (a WAV at another rate is resampled).
"""

from __future__ import annotations

import base64
import binascii
import io
import wave

import aiohttp
import numpy as np

from voxline.errors import ProviderError
from voxline.providers.http import HostedEndpoint
from voxline.providers.sarvam import sarvam_language
from voxline.tts.shaping import to_telephony

SAMPLE_RATE = 8000


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes → mono int16 samples and their rate."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{8 * w.getsampwidth()}-bit WAV")
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        if w.getnchannels() > 1:
            samples = samples.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.int16)
        return samples, w.getframerate()


class SarvamTTS:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        model: str,
        speaker: str,
        language: str,
        pace: float = 1.0,
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.language = sarvam_language(language)
        self.name = f"sarvam:{model}:{speaker}:{self.language}"
        self._endpoint = HostedEndpoint(
            client,
            "sarvam",
            base_url.rstrip("/") + "/text-to-speech",
            {"api-subscription-key": api_key},
            timeout_s,
            retry_window_s,
        )
        self._model = model
        self._speaker = speaker
        self._pace = pace

    async def synthesize(self, text: str) -> bytes:
        if not text.strip():
            return b""
        body = {
            "text": text,
            "target_language_code": self.language,
            "speaker": self._speaker,
            "model": self._model,
            "speech_sample_rate": SAMPLE_RATE,
        }
        if self._pace != 1.0:
            body["pace"] = self._pace
        response = await self._endpoint.post(json=body)
        try:
            audios = response.json()["audios"]
            pieces = [decode_wav(base64.b64decode(audio)) for audio in audios]
        except (KeyError, TypeError, ValueError, binascii.Error, wave.Error, EOFError) as exc:
            raise ProviderError("sarvam", "protocol", f"unexpected text-to-speech answer: {exc}") from None
        return b"".join(to_telephony(samples, rate) for samples, rate in pieces if samples.size)
