"""Embedded multilingual text-to-speech: libespeak-ng (with its data, Hindi included) via ctypes.

The library and its data ship in the ``espeakng-loader`` wheel. It is robotic but speaks the
languages hibari lacks. libespeak-ng keeps global state (one voice, one callback), so the library
is initialized once per process and a lock serializes synthesis; each ``EspeakTTS`` (one per
voice) selects its voice for every synthesis.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from voxline.providers.pool import ModelPool
from voxline.tts.shaping import to_telephony

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Library:
    """libespeak-ng, initialized once per process: it keeps one global voice and one callback."""

    _instance: _Library | None = None
    _create_lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialize")
        self.chunks: list[np.ndarray] = []
        self.callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()  # one synthesis at a time, voice and all

    @classmethod
    def get(cls) -> _Library:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav, count: int, _events) -> int:
        if count > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: bytes, rate: int) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice) != 0:
                raise ValueError(f"espeak-ng has no voice {voice.decode()!r}")
            self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            self.chunks = []
            self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, self.chunks = self.chunks, []
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.int16)


class EspeakTTS:
    def __init__(self, pool: ModelPool, voice: str = "en-us", speed: float = 1.0) -> None:
        self._library = _Library.get()
        self._voice = voice.encode()
        self._rate_wpm = int(175 * speed)
        self._library.synthesize("", self._voice, self._rate_wpm)  # fails here if the voice is unknown
        self.name = f"espeak-ng:{voice}"
        self._pool = pool

    def synthesize_pcm(self, text: str) -> tuple[np.ndarray, int]:
        return self._library.synthesize(text, self._voice, self._rate_wpm), self._library.rate

    def synthesize_blocking(self, text: str) -> bytes:
        pcm, rate = self.synthesize_pcm(text)
        return to_telephony(pcm, rate)

    async def synthesize(self, text: str) -> bytes:
        return await self._pool.run(self.synthesize_blocking, text)

    def warm_up(self) -> None:
        self.synthesize_blocking("Hello.")
