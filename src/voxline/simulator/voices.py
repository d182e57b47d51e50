"""What the simulated caller says: WAV recordings of real speech, or text synthesized offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE, load_as_telephony, trim_silence
from voxline.simulator.caller import CallerTurn


def speech_from_wav(path: str | Path) -> np.ndarray:
    """A recording as the phone line carries it (8 kHz), without leading or trailing silence."""
    return trim_silence(load_as_telephony(path), TELEPHONY_RATE, threshold_dbfs=-40.0, keep_ms=20)


def speech_from_text(text: str) -> np.ndarray:
    from voxline.providers.pool import ModelPool
    from voxline.tts.hibari_tts import HibariTTS

    tts = HibariTTS(ModelPool(1))
    return mulaw.decode(tts.synthesize_blocking(text))


def caller_turns(items: list[str]) -> list[CallerTurn]:
    """Each item is a WAV file path, or else text to speak."""
    turns = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() == ".wav" and path.is_file():
            turns.append(CallerTurn(label=path.stem, audio=speech_from_wav(path)))
        else:
            turns.append(CallerTurn(label=item[:40], audio=speech_from_text(item)))
    return turns
