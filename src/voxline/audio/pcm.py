"""PCM helpers: resampling (soxr), float/int16 conversion, levels, silence trimming, WAV I/O."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

TELEPHONY_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_MS = 20


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 or float32 mono audio with soxr; returns the same dtype."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    if samples.dtype == np.int16:
        out = soxr.resample(samples.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
        return float_to_int16(out)
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ")


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def rms_dbfs(samples: np.ndarray) -> float:
    """Level of int16 audio in dBFS (−inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return 20.0 * np.log10(rms / 32768.0) if rms > 0 else float("-inf")


def trim_silence(
    samples: np.ndarray, rate: int, threshold_dbfs: float = -45.0, keep_ms: int = 20, window_ms: int = 10
) -> np.ndarray:
    """Cut leading and trailing audio quieter than ``threshold_dbfs`` (measured in short windows).

    Keeps ``keep_ms`` of margin so consonant onsets are not clipped. Returns an empty array if
    nothing is louder than the threshold.
    """
    window = max(1, rate * window_ms // 1000)
    n = samples.size // window
    if n == 0:
        return samples[:0]
    frames = samples[: n * window].astype(np.float64).reshape(n, window)
    levels = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
    loud = np.nonzero(levels > 10.0 ** (threshold_dbfs / 20.0))[0]
    if loud.size == 0:
        return samples[:0]
    margin = rate * keep_ms // 1000
    start = max(0, loud[0] * window - margin)
    end = min(samples.size, (loud[-1] + 1) * window + margin)
    return samples[start:end]


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV (mono, or the first channel) → (int16 samples, rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        channels = w.getnchannels()
        rate = w.getframerate()
    if channels > 1:
        data = data.reshape(-1, channels)[:, 0]
    return data.astype(np.int16), rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def load_as_telephony(path: str | Path) -> np.ndarray:
    """A WAV file as 8 kHz int16, the way a phone line would carry it."""
    samples, rate = read_wav(path)
    return resample(samples, rate, TELEPHONY_RATE)
