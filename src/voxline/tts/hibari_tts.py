"""Embedded English text-to-speech: hibari (a distilled Kokoro voice, 24 kHz, onnxruntime).

Only the bundled "heart" voice is used: other hibari voices would be downloaded on first use,
and Voxline never downloads at run time. The first synthesis after loading is about ten times
slower than the rest, so the model is warmed up at start-up.
"""

from __future__ import annotations

import threading

from voxline.providers.pool import ModelPool
from voxline.tts.shaping import to_telephony


class HibariTTS:
    name = "hibari"

    def __init__(self, pool: ModelPool, speed: float = 1.0, voice: str = "heart") -> None:
        from hibari import Hibari

        if voice != "heart":
            raise ValueError("only the bundled hibari voice 'heart' works offline")
        self._tts = Hibari(voice=voice, threads=1)
        self._rate = self._tts.sample_rate
        self._speed = speed
        self._pool = pool
        self._lock = threading.Lock()

    def synthesize_blocking(self, text: str) -> bytes:
        with self._lock:
            audio = self._tts(text, speed=self._speed, seed=0)
        return to_telephony(audio, self._rate)

    async def synthesize(self, text: str) -> bytes:
        return await self._pool.run(self.synthesize_blocking, text)

    def warm_up(self) -> None:
        self.synthesize_blocking("Hello there.")
