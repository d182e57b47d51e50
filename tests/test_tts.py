"""Embedded text-to-speech: telephony-ready audio, no leading silence, intelligible after the phone line."""

from __future__ import annotations

import numpy as np
import pytest

from voxline.audio import mulaw
from voxline.engine import files
from voxline.providers.pool import ModelPool
from voxline.simulator.recorded_call import first_audible_offset
from voxline.stt.whisper import WhisperSTT
from voxline.tts.espeak_tts import EspeakTTS
from voxline.tts.hibari_tts import HibariTTS


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT(files.whisper_tiny_en_dir(), ModelPool(1), 2)


def test_hibari_english_round_trip(stt):
    files.verified_all(files.HIBARI_HEART)
    tts = HibariTTS(ModelPool(1))
    ulaw = tts.synthesize_blocking("We are open from nine in the morning until six in the evening.")
    pcm = mulaw.decode(ulaw)
    assert 2.0 < pcm.size / 8000 < 8.0
    assert first_audible_offset(pcm) <= 0.06  # the engine's leading silence is trimmed
    heard = stt.transcribe_blocking(pcm, "en").lower()
    assert all(word in heard for word in ("open", "morning", "evening")), heard


def test_espeak_speaks_hindi_from_devanagari():
    files.verified_all(files.ESPEAK_DATA)
    tts = EspeakTTS(ModelPool(1), voice="hi")
    pcm = mulaw.decode(tts.synthesize_blocking("नमस्ते, सनराइज़ डेंटल में आपका स्वागत है।"))
    assert 1.0 < pcm.size / 8000 < 8.0
    assert first_audible_offset(pcm) <= 0.06
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 500  # clearly audible speech


def test_empty_text_gives_no_audio():
    assert HibariTTS(ModelPool(1)).synthesize_blocking("   ") == b""
