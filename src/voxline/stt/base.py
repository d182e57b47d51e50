"""The speech-to-text interfaces every provider implements.

Two shapes: ``SpeechToText`` transcribes a finished utterance (embedded Whisper, REST APIs);
``StreamingSpeechToText`` opens one ``SpeechStream`` per call and is fed the caller's audio as it
arrives, so the transcript is ready almost as soon as the caller stops (Deepgram's live API).
A streaming provider also implements ``transcribe`` for the places that only have whole
recordings (the recording path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np


class SpeechToText(Protocol):
    """Transcribes one finished utterance of 8 kHz int16 telephony audio."""

    name: str

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str: ...


class SpeechStream(Protocol):
    """One call's live transcription: the caller's μ-law in as it comes, the utterance's text out.

    ``send`` never blocks (audio is buffered, bounded, while the connection is slow or being
    re-established). ``finalize`` flushes what the provider still holds and returns the text of
    the utterance since the last ``reset``; it raises ``ProviderError`` when the connection could
    not be kept (after bounded retries). ``on_end_of_speech`` is called when the provider itself
    decides the caller has finished (it may end the turn before the local silence window does).
    """

    name: str
    on_end_of_speech: Callable[[], None] | None

    def send(self, ulaw: bytes) -> None: ...

    async def finalize(self) -> str: ...

    def transcript(self) -> str: ...

    def reset(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class StreamingSpeechToText(Protocol):
    name: str

    def open(self, language: str) -> SpeechStream: ...

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str: ...
