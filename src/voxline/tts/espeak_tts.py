"""Embedded multilingual text-to-speech: libespeak-ng (with its data, Hindi included) via ctypes.

The library and its data ship in the ``espeakng-loader`` wheel. It is robotic but speaks the
languages hibari lacks. libespeak-ng keeps global state, so one instance serves the process and
a lock serializes synthesis.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from voxline.engine.pool import ModelPool
from voxline.tts.shaping import to_telephony

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakTTS:
    name = "espeak-ng"

    def __init__(self, pool: ModelPool, voice: str = "en-us", speed: float = 1.0) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_DONT_EXIT)
        if self._rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialize")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(175 * speed), 0)
        self.name = f"espeak-ng:{voice}"
        self._pool = pool
        self._lock = threading.Lock()

    def _on_audio(self, wav, count: int, _events) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize_pcm(self, text: str) -> tuple[np.ndarray, int]:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks = []
            self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return pcm.astype(np.int16), self._rate

    def synthesize_blocking(self, text: str) -> bytes:
        pcm, rate = self.synthesize_pcm(text)
        return to_telephony(pcm, rate)

    async def synthesize(self, text: str) -> bytes:
        return await self._pool.run(self.synthesize_blocking, text)

    def warm_up(self) -> None:
        self.synthesize_blocking("Hello.")
