"""μ-law audio as a WAV file: what Twilio's <Play> fetches and what hosted transcription uploads."""

from __future__ import annotations

import io
import wave

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE


def wav_bytes(ulaw: bytes) -> bytes:
    """8 kHz 16-bit PCM WAV, a format every Twilio <Play> accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(TELEPHONY_RATE)
        w.writeframes(mulaw.decode(ulaw).astype("<i2").tobytes())
    return buffer.getvalue()
