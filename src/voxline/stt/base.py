"""The speech-to-text interface every provider implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class SpeechToText(Protocol):
    """Transcribes one finished utterance of 8 kHz int16 telephony audio."""

    name: str

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str: ...
