"""The text-to-speech interface every provider implements."""

from __future__ import annotations

from typing import Protocol


class TextToSpeech(Protocol):
    """Synthesizes one clause or sentence as 8 kHz μ-law bytes, ready for the phone line.

    Returning telephony audio directly lets providers that can produce μ-law themselves skip a
    transcoding step; embedded engines resample and encode on their worker thread.
    """

    name: str

    async def synthesize(self, text: str) -> bytes: ...
