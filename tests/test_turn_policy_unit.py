"""The adaptive turn-taking parts on their own: how a transcript ends, the echo gate, overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from voxline.audio import mulaw
from voxline.config import EchoSettings
from voxline.turns.completeness import Ending, judge
from voxline.turns.echo import EchoGatedVad, EchoReference, frame_level
from voxline.turns.overlap import OverlapKind, classify_overlap

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "ending"),
    [
        ("What time do you open on Saturday?", Ending.QUESTION),
        ("Can you tell me the price of a cleaning.", Ending.QUESTION),  # no question mark, opens like one
        ("I'd like to book a check-up.", Ending.COMPLETE),
        ("My number is four one five", Ending.INCOMPLETE),
        ("My number is 415-555", Ending.INCOMPLETE),
        ("My number is 415-555-0123.", Ending.COMPLETE),
        ("I wanted to ask about the", Ending.INCOMPLETE),
        ("I need a cleaning and", Ending.INCOMPLETE),
        ("So, um...", Ending.INCOMPLETE),
        ("Monday, Tuesday,", Ending.INCOMPLETE),
        ("mujhe appointment chahiye aur", Ending.INCOMPLETE),
        ("thank you", Ending.UNSURE),
        ("", Ending.EMPTY),
        ("  ...  ", Ending.EMPTY),
    ],
)
def test_how_a_transcript_ends(text: str, ending: Ending) -> None:
    assert judge(text) is ending


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Mm-hmm.", OverlapKind.BACKCHANNEL),
        ("Okay.", OverlapKind.BACKCHANNEL),
        ("Yeah, right.", OverlapKind.BACKCHANNEL),
        ("हाँ", OverlapKind.BACKCHANNEL),
        ("Achha.", OverlapKind.BACKCHANNEL),
        ("", OverlapKind.NOISE),
        ("...", OverlapKind.NOISE),
        ("Um.", OverlapKind.NOISE),  # a hummed "hmm", as Whisper writes it
        ("Em", OverlapKind.NOISE),
        ("Uh huh.", OverlapKind.BACKCHANNEL),
        ("Um, no.", OverlapKind.SPEECH),
        ("No.", OverlapKind.SPEECH),
        ("Wait, is that on Tuesday?", OverlapKind.SPEECH),
        ("okay but what about Sunday", OverlapKind.SPEECH),
    ],
)
def test_what_speech_over_the_agent_was(text: str, kind: OverlapKind) -> None:
    from voxline.config import BACKCHANNELS

    assert classify_overlap(text, BACKCHANNELS.split()) is kind


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _AlwaysVoiced:
    def is_speech(self, frame: np.ndarray) -> bool:
        return True


def _speech_like(seconds: float, level: float, seed: int = 1) -> np.ndarray:
    """Noise whose loudness moves like syllables (4 Hz), at ``level`` RMS."""
    rng = np.random.default_rng(seed)
    n = int(8000 * seconds)
    envelope = 0.35 + 0.65 * np.abs(np.sin(np.arange(n) * np.pi * 4 / 8000))
    samples = rng.standard_normal(n) * envelope
    return (samples / np.sqrt(np.mean(samples**2)) * level).astype(np.int16)


def _run(echo_gain_db: float | None, caller_level: float | None, delay_ms: int = 100) -> list[bool]:
    """The agent plays 3 s of speech; the inbound line carries its echo and/or the caller's voice.
    Returns the gated detector's verdict per 20 ms frame."""
    clock = _Clock()
    reference = EchoReference(EchoSettings(), clock)
    gated = EchoGatedVad(_AlwaysVoiced(), reference)
    agent = _speech_like(3.0, 3000.0)
    played = mulaw.decode(mulaw.encode(agent))
    reference.sent(mulaw.encode(agent), plays_at=clock.now)
    delay = delay_ms * 8
    echo = np.zeros(played.size + delay)
    if echo_gain_db is not None:
        echo[delay:] = played * 10 ** (echo_gain_db / 20)
    if caller_level is not None:
        voice = _speech_like(1.0, caller_level, seed=2).astype(float)
        echo[16000 : 16000 + voice.size] += voice  # the caller talks from 2 s to 3 s
    verdicts = []
    for start in range(0, played.size, 160):
        frame = np.clip(echo[start : start + 160], -32768, 32767).astype(np.int16)
        verdicts.append(gated.is_speech(frame) if frame_level(frame) > 30 else False)
        clock.now += 0.02
    return verdicts


@pytest.mark.parametrize("gain_db", [-10, -15, -20, -25, -30])
@pytest.mark.parametrize("delay_ms", [40, 100, 170, 250])
def test_the_agents_own_echo_is_not_speech(gain_db: float, delay_ms: int) -> None:
    verdicts = _run(gain_db, None, delay_ms)
    assert sum(verdicts) <= 2, f"{sum(verdicts)} echo frames taken for speech"


@pytest.mark.parametrize("gain_db", [None, -10, -20])
def test_the_callers_voice_over_the_echo_is_speech(gain_db: float | None) -> None:
    verdicts = _run(gain_db, caller_level=2500.0)
    talking = verdicts[100:150]  # 2 s to 3 s
    assert sum(talking) >= 40, f"only {sum(talking)} of 50 frames of the caller's voice heard"


def test_no_playout_no_gate() -> None:
    reference = EchoReference(EchoSettings(), _Clock())
    assert not reference.explains(1000.0)


def test_the_echo_reference_forgets_old_playout_even_if_the_caller_never_speaks() -> None:
    clock = _Clock()
    reference = EchoReference(EchoSettings(), clock)
    chunk = mulaw.encode(_speech_like(0.06, 3000.0))
    for _ in range(10_000):  # 10 minutes of agent audio, 60 ms at a time, nothing inbound
        reference.sent(chunk, plays_at=clock.now)
        clock.now += 0.06
    assert len(reference._played) <= (EchoSettings().max_delay_ms + 100) // 20


def test_a_transcript_stuck_in_a_loop_counts_as_no_words():
    """Whisper's hallucination on hiss or pink noise: one word over and over (compression ratio > 2.4)."""
    from voxline.stt.whisper import _unless_looping

    assert _unless_looping("you " * 60) == ""
    assert _unless_looping("Thank you. " * 6) == ""
    for real in (
        "No, no, no, no.",
        "one one one one",
        "My number is 4 1 5, 5 5 5, 0 1 2 3.",
        "1 1 1 1 1 1 1 1 1 1",
        "My account is 7 7 7 7 7",
        "Okay bye bye bye",
    ):
        assert _unless_looping(real) == real


def test_real_words_followed_by_a_loop_keep_the_words():
    """Whisper on the padding after speech sometimes repeats the last word: the words are kept."""
    from voxline.stt.whisper import _unless_looping

    said = "A caller from the front desk. They said, can I speak to a person about my bill? Please."
    assert _unless_looping(said + " Please." * 19) == said
    assert _unless_looping("I need to book a cleaning" + " for Friday" * 12) == "I need to book a cleaning for Friday"
