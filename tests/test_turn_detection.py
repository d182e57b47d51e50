"""Turn detection on real human speech with pauses, through a μ-law phone line."""

import numpy as np
import pytest

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE, load_as_telephony, trim_silence
from voxline.config import VadSettings
from voxline.engine import files
from voxline.turns.detector import SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted, TurnDetector
from voxline.turns.vad import SileroVad, WebRtcVad


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * TELEPHONY_RATE), dtype=np.int16)


def speech(path) -> np.ndarray:
    return trim_silence(load_as_telephony(path), TELEPHONY_RATE, threshold_dbfs=-40.0)


def run(detector: TurnDetector, pcm: np.ndarray) -> list[tuple[float, object]]:
    line = mulaw.decode(mulaw.encode(pcm))  # what arrives over the phone
    events = []
    for i in range(line.size // FRAME_SAMPLES):
        event = detector.process(line[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
        if event is not None:
            events.append(((i + 1) * FRAME_SAMPLES / TELEPHONY_RATE, event))
    return events


def make_vad(kind: str):
    if kind == "webrtc":
        return WebRtcVad(3)
    return SileroVad(files.verified(files.SILERO_VAD), 0.5)


@pytest.mark.parametrize("kind", ["webrtc", "silero"])
def test_two_utterances_separated_by_a_pause_are_two_turns(kind, librivox):
    first, second = speech(librivox["0880"]), speech(librivox["0930"])
    pcm = np.concatenate([silence(0.6), first, silence(1.2), second, silence(1.0)])
    starts = [0.6, 0.6 + first.size / TELEPHONY_RATE + 1.2]
    ends = [0.6 + first.size / TELEPHONY_RATE, starts[1] + second.size / TELEPHONY_RATE]

    events = run(TurnDetector(make_vad(kind), VadSettings(engine=kind)), pcm)

    started = [t for t, e in events if isinstance(e, SpeechStarted)]
    ended = [(t, e) for t, e in events if isinstance(e, SpeechEnded)]
    assert len(started) == 2 and len(ended) == 2, events
    for detected, true_start in zip(started, starts):
        assert true_start < detected < true_start + 0.7  # the smoothing window must fill first
    for (detected, event), true_end in zip(ended, ends):
        assert event.silence_frames == 15
        # the turn ends exactly 300 ms after the last voiced frame, which lies near the end of the words
        assert detected - (event.last_voiced_frame + 1) * 0.02 == pytest.approx(0.3)
        assert (
            true_end - 0.35 < (event.last_voiced_frame + 1) * 0.02 <= true_end + 0.15
        )  # WebRTC VAD hangs over briefly
        assert event.voiced_ms > 1000
    # The utterance handed to STT holds the speech, including the onset before detection.
    assert ended[0][1].audio.size >= first.size * 0.9


def test_confidence_is_the_voiced_fraction(librivox):
    events = run(TurnDetector(WebRtcVad(3), VadSettings()), np.concatenate([silence(0.5), speech(librivox["0880"])]))
    started = [e for _, e in events if isinstance(e, SpeechStarted)]
    assert started and 0.5 <= started[0].confidence <= 1.0


def test_short_pause_reports_pause_then_resumption_not_end(librivox):
    first, second = speech(librivox["0880"]), speech(librivox["0930"])
    pcm = np.concatenate([silence(0.5), first, silence(0.16), second, silence(0.6)])
    kinds = [type(e) for _, e in run(TurnDetector(WebRtcVad(3), VadSettings()), pcm)]
    assert kinds.count(SpeechEnded) == 1
    assert SpeechPaused in kinds and SpeechResumed in kinds
    assert kinds.index(SpeechResumed) < kinds.index(SpeechEnded)


def test_barge_in_ratio_detects_speech_sooner(librivox):
    pcm = np.concatenate([silence(0.6), speech(librivox["0880"])])
    normal = run(TurnDetector(WebRtcVad(3), VadSettings()), pcm)
    eager_detector = TurnDetector(WebRtcVad(3), VadSettings())
    eager_detector.start_ratio = VadSettings().barge_in_ratio
    eager = run(eager_detector, pcm)
    first_normal = next(t for t, e in normal if isinstance(e, SpeechStarted))
    first_eager = next(t for t, e in eager if isinstance(e, SpeechStarted))
    assert first_eager < first_normal
    assert first_eager - 0.6 <= 0.35  # this recording opens with a weak syllable and a short gap


def test_line_silence_and_noise_floor_start_nothing():
    rng = np.random.default_rng(3)
    quiet = (rng.standard_normal(TELEPHONY_RATE * 3) * 30).astype(np.int16)  # about -60 dBFS hiss
    assert run(TurnDetector(WebRtcVad(3), VadSettings()), quiet) == []
    assert run(TurnDetector(make_vad("silero"), VadSettings(engine="silero")), quiet) == []
