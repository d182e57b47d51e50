"""The agent's own voice coming back: told apart from the caller's by the audio the agent sent.

On a speakerphone or a line with echo, what the caller's phone plays returns in the inbound audio
10–30 dB down and 40–250 ms (on real lines up to ~500 ms) later. A voice activity detector calls
that speech, and the agent would stop for its own words. The pacer reports every frame it sends
with the time the far end will play it; a frame of the caller's audio counts as speech only if it
is louder than the echo the recent playout could explain.

The echo return loss (how far down the echo comes back) is learned per call from the frames that
arrive while the agent talks: the largest ratio of inbound to played level seen lately, with a
slow decay. Until ``warmup_s`` of playout has gone out, a conservative loss is assumed (the worst
echo the agent is meant to withstand), so the first second on a speakerphone does not cut the
agent off. The gate never rises above ``caller_ratio`` of the agent's level: inbound audio that
loud is the caller's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from voxline.audio.mulaw import DECODE_TABLE
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE
from voxline.config import EchoSettings
from voxline.turns.vad import VoiceActivityDetector

FRAME_S = FRAME_SAMPLES / TELEPHONY_RATE
_SQUARES = DECODE_TABLE.astype(np.float64) ** 2
QUIET_LEVEL = 32768.0 * 10 ** (-50 / 20)  # played frames quieter than −50 dBFS cannot echo audibly
DECAY_PER_FRAME = 10 ** (-1.0 / 20 / 50)  # the learned loss relaxes by 1 dB per second


def _db(db: float) -> float:
    return 10 ** (db / 20)


def frame_level(frame: np.ndarray) -> float:
    """RMS of one frame of int16 samples."""
    samples = frame.astype(np.float32)
    return math.sqrt(float(np.dot(samples, samples)) / max(1, samples.size))


class EchoReference:
    """What the far end plays and when; answers whether an inbound frame could be its echo."""

    def __init__(self, settings: EchoSettings, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._max_delay_s = settings.max_delay_ms / 1000
        self._margin = _db(settings.margin_db)
        self._warmup_loss = _db(settings.warmup_loss_db)
        self._caller_ratio = _db(settings.caller_ratio_db)
        self._warmup_s = settings.warmup_s
        self._played: deque[tuple[float, float]] = deque()  # (play time, level) per frame
        self._first_played_at: float | None = None  # when the call's first agent audio played (the warm-up)
        self._loss = 0.0  # learned echo return loss (ratio), 0 until something was learned
        self.enabled = settings.enabled

    def sent(self, ulaw: bytes, plays_at: float) -> None:
        """The pacer sent ``ulaw`` (whole frames); the far end starts playing it at ``plays_at``."""
        if not self.enabled:
            return
        codes = np.frombuffer(ulaw, dtype=np.uint8)
        frames = codes.size // FRAME_SAMPLES
        if not frames:
            return
        levels = np.sqrt(_SQUARES[codes[: frames * FRAME_SAMPLES]].reshape(frames, FRAME_SAMPLES).mean(axis=1))
        for index, level in enumerate(levels.tolist()):
            self._played.append((plays_at + index * FRAME_S, level))
        self._forget_before(self._clock())  # (a caller who never speaks would not prune it otherwise)
        if self._first_played_at is None:
            self._first_played_at = plays_at

    def cleared(self) -> None:
        """The far end dropped what it had not played yet."""
        now = self._clock()
        while self._played and self._played[-1][0] > now:
            self._played.pop()

    def _forget_before(self, now: float) -> None:
        """Drop frames played too long ago to echo into ``now``."""
        played = self._played
        while played and played[0][0] < now - self._max_delay_s - FRAME_S:
            played.popleft()

    def _reference(self, now: float) -> float:
        """The loudest frame played within the echo's reach of ``now`` (0 when none)."""
        self._forget_before(now)
        loudest = 0.0
        for at, level in self._played:
            if at > now:
                break
            loudest = max(loudest, level)
        return loudest

    def explains(self, level: float) -> bool:
        """Whether an inbound frame of ``level`` (RMS) could be the echo of recent playout; learns
        the echo's loss from it as a side effect."""
        if not self._played:
            return False
        now = self._clock()
        reference = self._reference(now)
        if reference < QUIET_LEVEL:
            return False
        self._loss *= DECAY_PER_FRAME
        warm = self._first_played_at is not None and now - self._first_played_at >= self._warmup_s
        loss = self._loss if warm else max(self._loss, self._warmup_loss)
        ratio = level / reference
        explained = ratio <= loss * self._margin
        if explained and ratio > self._loss:
            # Learned only from frames taken for echo, and never so high that the gate would reach
            # ``caller_ratio``: a caller who speaks softly at first must not teach it to ignore them.
            self._loss = min(ratio, self._caller_ratio / self._margin)
        return explained

    @property
    def loss_db(self) -> float:
        return 20 * math.log10(self._loss) if self._loss > 0 else -math.inf


class EchoGatedVad:
    """A voice activity detector that does not count the agent's own echo as speech."""

    def __init__(self, vad: VoiceActivityDetector, echo: EchoReference) -> None:
        self._vad = vad
        self._echo = echo

    def is_speech(self, frame: np.ndarray) -> bool:
        voiced = self._vad.is_speech(frame)  # every frame: a stateful detector must see them all
        if not voiced or not self._echo.enabled:
            return voiced
        return not self._echo.explains(frame_level(frame))
