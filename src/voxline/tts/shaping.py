"""Turns an engine's float or int16 output into tight 8 kHz μ-law for the phone line."""

from __future__ import annotations

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE, float_to_int16, resample, trim_silence

TRAILING_PAUSE_MS = 80  # a short natural pause between clauses


def to_telephony(samples: np.ndarray, rate: int) -> bytes:
    """Trim silence (engines pad every sentence; the caller should not wait for it), resample, encode."""
    pcm = float_to_int16(samples) if samples.dtype != np.int16 else samples
    pcm = trim_silence(pcm, rate, threshold_dbfs=-50.0, keep_ms=10)
    if pcm.size == 0:
        return b""
    pcm8k = resample(pcm, rate, TELEPHONY_RATE)
    pause = np.zeros(TELEPHONY_RATE * TRAILING_PAUSE_MS // 1000, dtype=np.int16)
    return mulaw.encode(np.concatenate([pcm8k, pause]))
