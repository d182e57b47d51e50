"""Turn-taking: when the caller's turn ends, and whether speech over the agent interrupts it.

The session feeds every 20 ms frame to a ``TurnTaking`` policy and tells it what the agent is
doing (``agent_speaking``); the policy answers with a decision. The detector's own events
(speech started, paused, resumed, ended) stay inside: a policy may hold a turn open after a
pause, or let a short "mm-hmm" over the agent pass, without the session changing.

``SilenceTurnTaking``: the turn ends after ``end_silence_frames`` of silence, early
transcription starts at the pause, any speech that starts while the agent is talking or about to
is an interruption (with a lower start threshold, so a barge-in is caught quickly), and an
utterance shorter than ``min_speech_ms`` is noise.

``AdaptiveTurnTaking`` (the default) builds on it:
- the silence that ends a turn follows the early transcript (``turns.completeness``): the session
  hands the text over with ``transcript`` and the policy answers with the end of the turn if the
  silence is already long enough for that kind of ending;
- the agent's own echo is not speech (``turns.echo``);
- speech over the agent is first an ``Interruption`` (the session pauses the agent's audio at
  once); it becomes ``InterruptionConfirmed`` after ``interrupt_confirm_ms`` of voice, and a
  shorter utterance over the agent ends after ``overlap_end_silence_ms`` marked ``overlap``, so the
  session can judge its words (a backchannel or nothing: the agent resumes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voxline.audio.pcm import FRAME_MS
from voxline.config import TurnSettings, VadSettings
from voxline.turns.completeness import Ending, judge
from voxline.turns.detector import SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted, TurnDetector
from voxline.turns.echo import EchoGatedVad, EchoReference
from voxline.turns.vad import VoiceActivityDetector


@dataclass(frozen=True, slots=True)
class CallerStarted:
    """The caller started speaking while the agent was quiet."""

    confidence: float


@dataclass(frozen=True, slots=True)
class Interruption:
    """The caller started speaking over the agent (or over a reply on its way)."""

    confidence: float
    tentative: bool = False  # pause the agent; ``InterruptionConfirmed`` or the caller's words decide


@dataclass(frozen=True, slots=True)
class InterruptionConfirmed:
    """The caller has spoken over the agent long enough for it to be a real interruption."""

    voiced_ms: int


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
    overlap: bool = False  # it started over the agent and was too short to be confirmed as an interruption


@dataclass(frozen=True, slots=True)
class NoiseIgnored:
    """An utterance too short to be speech ended; nothing to answer."""

    voiced_ms: int


TurnDecision = (
    CallerStarted | Interruption | InterruptionConfirmed | CallerPaused | CallerResumed | TurnEnded | NoiseIgnored
)


class TurnTaking(Protocol):
    @property
    def caller_speaking(self) -> bool: ...

    @property
    def in_pause(self) -> bool:
        """The caller is speaking, and the latest frame was silent."""
        ...

    @property
    def utterance_frames(self) -> int: ...

    @property
    def pause_s(self) -> float:
        """How long the caller has been silent inside the current utterance."""
        ...

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

    def transcript(self, text: str | None) -> TurnDecision | None:
        """The early transcript of the utterance up to the latest pause (None: it failed); the
        policy may end the turn now (the silence is already long enough for how the words end)."""
        ...

    def ending(self) -> Ending | None:
        """How the latest early transcript ended (None before one came back)."""
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

    @property
    def pause_s(self) -> float:
        return self._detector.silence_frames * FRAME_MS / 1000

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

    def transcript(self, text: str | None) -> TurnDecision | None:
        return None

    def ending(self) -> Ending | None:
        return None

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


class AdaptiveTurnTaking(SilenceTurnTaking):
    def __init__(
        self, vad: VoiceActivityDetector, settings: VadSettings, turns: TurnSettings, echo: EchoReference
    ) -> None:
        super().__init__(EchoGatedVad(vad, echo), settings)
        self._turns = turns
        self._ending: Ending | None = None
        self._no_text = False  # the early transcript failed: the fixed silence rule decides
        self._overlap = False  # the current utterance started over the agent
        self._confirmed = False
        self._confirm_frames = max(1, turns.interrupt_confirm_ms // FRAME_MS)
        self._overlap_end_frames = max(1, turns.overlap_end_silence_ms // FRAME_MS)
        self._wait_frames = max(1, turns.wait_for_text_ms // FRAME_MS)
        self._silence_ms = {
            Ending.EMPTY: turns.empty_silence_ms,
            Ending.QUESTION: turns.question_silence_ms,
            Ending.COMPLETE: turns.complete_silence_ms,
            Ending.UNSURE: turns.unsure_silence_ms,
            Ending.INCOMPLETE: turns.incomplete_silence_ms,
        }
        self._early = settings.early_stt_frames > 0

    def ending(self) -> Ending | None:
        return self._ending

    def hear(self, frame: np.ndarray) -> TurnDecision | None:
        decision = super().hear(frame)
        if isinstance(decision, Interruption):
            self._overlap, self._confirmed, self._ending = True, False, None
            decision = Interruption(decision.confidence, tentative=True)
            self._no_text = False
        elif isinstance(decision, (CallerStarted, CallerPaused, CallerResumed)):
            self._overlap = self._overlap and not isinstance(decision, CallerStarted)
            self._ending, self._no_text = None, False
        self._detector.end_silence_frames = self._end_silence_frames()
        if decision is None and self._overlap and not self._confirmed and self._detector.speaking:
            if self._detector.voiced_ms >= self._confirm_frames * FRAME_MS:
                self._confirmed = True
                return InterruptionConfirmed(self._detector.voiced_ms)
        return decision

    def transcript(self, text: str | None) -> TurnDecision | None:
        if not self.in_pause:
            return None
        self._ending = judge(text) if text is not None else None
        self._no_text = text is None
        self._detector.end_silence_frames = self._end_silence_frames()
        if self._detector.silence_frames < self._detector.end_silence_frames:
            return None
        event = self._detector.end_now()
        return self._ended(event, by_provider=False) if event is not None else None

    def provider_end_of_speech(self) -> TurnDecision | None:
        """A streaming STT's endpoint ends the turn only if the words so far allow it: its own
        silence window (``[stt] endpointing_ms``) knows nothing of an unfinished sentence."""
        if self._early and self._detector.silence_frames < self._end_silence_frames():
            return None
        return super().provider_end_of_speech()

    def _end_silence_frames(self) -> int:
        """The silence that ends the current utterance, from what is known of its words."""
        if self._overlap and not self._confirmed:
            return self._overlap_end_frames
        if not self._early or self._no_text:
            return self._settings.end_silence_frames
        if self._ending is None:
            return self._wait_frames  # the early transcript decides (see ``transcript``)
        return max(1, self._silence_ms[self._ending] // FRAME_MS)

    def _ended(self, event: SpeechEnded, by_provider: bool) -> TurnDecision:
        decision = super()._ended(event, by_provider)
        overlap = self._overlap and not self._confirmed
        self._overlap = False
        if isinstance(decision, TurnEnded) and overlap:
            return TurnEnded(decision.audio, decision.silence_s, decision.voiced_ms, decision.by_provider, True)
        return decision
