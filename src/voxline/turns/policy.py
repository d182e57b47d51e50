"""Turn-taking: when the caller's turn ends, and whether speech over the agent interrupts it.

The session feeds every 20 ms frame to a ``TurnTaking`` policy and tells it what the agent is
doing (``agent_speaking``); the policy answers with a decision. The detector's own events
(speech started, paused, resumed, ended) stay inside: a policy may hold a turn open after a
pause, or let a short "mm-hmm" over the agent pass, without the session changing.

``SilenceTurnTaking`` is the default: the turn ends after ``end_silence_frames`` of silence,
early transcription starts at the pause, any speech that starts while the agent is talking or
about to is an interruption (with a lower start threshold, so a barge-in is caught quickly), and
an utterance shorter than ``min_speech_ms`` is noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voxline.audio.pcm import FRAME_MS
from voxline.config import VadSettings
from voxline.turns.detector import SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted, TurnDetector
from voxline.turns.vad import VoiceActivityDetector


@dataclass(frozen=True, slots=True)
class CallerStarted:
    """The caller started speaking while the agent was quiet."""

    confidence: float


@dataclass(frozen=True, slots=True)
class Interruption:
    """The caller started speaking over the agent (or over a reply on its way)."""

    confidence: float


@dataclass(frozen=True, slots=True)
class CallerPaused:
    """A pause inside the turn: transcription may start on ``audio`` (the utterance so far)."""

    audio: np.ndarray


@dataclass(frozen=True, slots=True)
class CallerResumed:
    """The caller went on after a pause: an early transcription is out of date."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn is over: answer ``audio``."""

    audio: np.ndarray
    silence_s: float  # how long ago the caller's last voiced frame was
    voiced_ms: int
    by_provider: bool = False  # a streaming STT's endpoint ended it


@dataclass(frozen=True, slots=True)
class NoiseIgnored:
    """An utterance too short to be speech ended; nothing to answer."""

    voiced_ms: int


TurnDecision = CallerStarted | Interruption | CallerPaused | CallerResumed | TurnEnded | NoiseIgnored


class TurnTaking(Protocol):
    @property
    def caller_speaking(self) -> bool: ...

    @property
    def in_pause(self) -> bool:
        """The caller is speaking, and the latest frame was silent."""
        ...

    @property
    def utterance_frames(self) -> int: ...

    def utterance_audio(self) -> np.ndarray: ...

    def hear(self, frame: np.ndarray) -> TurnDecision | None:
        """One 20 ms frame of the caller (16-bit PCM at 8 kHz)."""
        ...

    def agent_state(self, replying: bool, playing: bool) -> None:
        """``replying``: a reply is on its way or being heard (speech then interrupts it);
        ``playing``: the agent's audio is queued or playing."""
        ...

    def provider_end_of_speech(self) -> TurnDecision | None:
        """A streaming STT heard the caller stop; the policy may end the turn now."""
        ...


class SilenceTurnTaking:
    def __init__(self, vad: VoiceActivityDetector, settings: VadSettings) -> None:
        self._settings = settings
        self._detector = TurnDetector(vad, settings)
        self._replying = False

    @property
    def caller_speaking(self) -> bool:
        return self._detector.speaking

    @property
    def in_pause(self) -> bool:
        return self._detector.speaking and self._detector.in_silence

    @property
    def utterance_frames(self) -> int:
        return self._detector.utterance_frames

    def utterance_audio(self) -> np.ndarray:
        return self._detector.utterance_audio()

    def agent_state(self, replying: bool, playing: bool) -> None:
        self._replying = replying
        # Over the agent's voice, speech starts at a lower voiced fraction: a barge-in in ~120 ms.
        self._detector.start_ratio = self._settings.barge_in_ratio if playing else self._settings.start_ratio

    def hear(self, frame: np.ndarray) -> TurnDecision | None:
        event = self._detector.process(frame)
        if event is None:
            return None
        if isinstance(event, SpeechStarted):
            self._detector.start_ratio = self._settings.start_ratio
            if self._replying:
                return Interruption(event.confidence)
            return CallerStarted(event.confidence)
        if isinstance(event, SpeechPaused):
            return CallerPaused(event.audio)
        if isinstance(event, SpeechResumed):
            return CallerResumed()
        return self._ended(event, by_provider=False)

    def provider_end_of_speech(self) -> TurnDecision | None:
        if not self.in_pause:
            return None
        event = self._detector.end_now()
        return self._ended(event, by_provider=True) if event is not None else None

    def _ended(self, event: SpeechEnded, by_provider: bool) -> TurnDecision:
        if event.voiced_ms < self._settings.min_speech_ms:
            return NoiseIgnored(event.voiced_ms)
        return TurnEnded(
            audio=event.audio,
            silence_s=event.silence_frames * FRAME_MS / 1000,
            voiced_ms=event.voiced_ms,
            by_provider=by_provider,
        )
