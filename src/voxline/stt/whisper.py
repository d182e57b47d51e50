"""Embedded speech-to-text: faster-whisper running Whisper tiny.en from a PyPI package.

Whisper is trained on 16 kHz audio, so the caller's 8 kHz samples are upsampled first (fed at
the wrong rate, it transcribes nonsense). One model is loaded per process and shared by every
call; CTranslate2 releases the GIL, so transcription runs in the model pool.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE, int16_to_float, resample
from voxline.engine.pool import ModelPool

WHISPER_RATE = 16000


class WhisperSTT:
    name = "whisper-tiny.en"

    def __init__(self, model_dir: Path, pool: ModelPool, threads: int) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._pool = pool
        self._lock = threading.Lock()

    def transcribe_blocking(self, pcm8k: np.ndarray, language: str) -> str:
        audio = resample(int16_to_float(pcm8k), TELEPHONY_RATE, WHISPER_RATE)
        with self._lock:
            segments, _info = self._model.transcribe(
                audio,
                language=language if self._model.model.is_multilingual else None,
                beam_size=1,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            text = " ".join(segment.text.strip() for segment in segments)
        return text.strip()

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        return await self._pool.run(self.transcribe_blocking, pcm8k, language)

    def warm_up(self) -> None:
        self.transcribe_blocking(np.zeros(TELEPHONY_RATE // 2, dtype=np.int16), "en")
