"""Finds where the caller's turn starts and ends, frame by frame.

Speech starts when a smoothing window (600 ms by default) is mostly voiced; the frames in the
window become the start of the utterance so the first syllable is not lost. Speech ends after a
run of unvoiced frames (15 × 20 ms = 300 ms). A few frames into that run the detector reports a
pause, so transcription can start while the silence window is still running; if the caller goes
on, it reports the resumption and the early result is thrown away.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from voxline.audio.pcm import FRAME_MS
from voxline.config import VadSettings
from voxline.turns.vad import VoiceActivityDetector


@dataclass(frozen=True)
class SpeechStarted:
    confidence: float  # voiced fraction of the smoothing window


@dataclass(frozen=True)
class SpeechPaused:
    audio: np.ndarray  # the utterance so far, for early transcription


@dataclass(frozen=True)
class SpeechResumed:
    pass


@dataclass(frozen=True)
class SpeechEnded:
    audio: np.ndarray
    silence_frames: int
    voiced_ms: int
    last_voiced_frame: int  # index of the last voiced frame since the stream started


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded


class TurnDetector:
    def __init__(self, vad: VoiceActivityDetector, settings: VadSettings) -> None:
        self._vad = vad
        self._settings = settings
        self._window = max(1, settings.ring_ms // FRAME_MS)
        self._ring: deque[tuple[np.ndarray, bool]] = deque(maxlen=self._window)
        self._ring_voiced = 0
        self.start_ratio = settings.start_ratio
        self.speaking = False
        self._utterance: list[np.ndarray] = []
        self._voiced_frames = 0
        self._silence_run = 0
        self._paused = False
        self._frame_index = -1
        self._last_voiced_index = -1
        self._max_frames = int(settings.max_utterance_s * 1000 / FRAME_MS)
        self.end_silence_frames = settings.end_silence_frames  # a turn-taking policy may change it per pause

    @property
    def in_silence(self) -> bool:
        """The latest frame of the current utterance was unvoiced."""
        return self._silence_run > 0

    @property
    def utterance_frames(self) -> int:
        return len(self._utterance)

    @property
    def silence_frames(self) -> int:
        """Unvoiced frames in a row at the end of the current utterance."""
        return self._silence_run

    @property
    def voiced_ms(self) -> int:
        """Voiced time in the current utterance."""
        return self._voiced_frames * FRAME_MS

    def utterance_audio(self) -> np.ndarray:
        """The current utterance so far (empty when the caller is not speaking)."""
        return np.concatenate(self._utterance) if self._utterance else np.zeros(0, dtype=np.int16)

    def process(self, frame: np.ndarray) -> TurnEvent | None:
        """Feed one 20 ms frame; returns at most one event."""
        self._frame_index += 1
        voiced = self._vad.is_speech(frame)
        if voiced:
            self._last_voiced_index = self._frame_index
        if not self.speaking:
            return self._while_silent(frame, voiced)
        return self._while_speaking(frame, voiced)

    def _while_silent(self, frame: np.ndarray, voiced: bool) -> TurnEvent | None:
        if len(self._ring) == self._window and self._ring[0][1]:
            self._ring_voiced -= 1
        self._ring.append((frame, voiced))
        self._ring_voiced += voiced
        fraction = self._ring_voiced / self._window
        if not voiced or fraction < self.start_ratio:
            return None
        self.speaking = True
        self._utterance = [f for f, _ in self._ring]
        self._voiced_frames = self._ring_voiced
        self._silence_run = 0
        self._paused = False
        self._ring.clear()
        self._ring_voiced = 0
        return SpeechStarted(confidence=round(fraction, 3))

    def _while_speaking(self, frame: np.ndarray, voiced: bool) -> TurnEvent | None:
        self._utterance.append(frame)
        if voiced:
            self._voiced_frames += 1
            self._silence_run = 0
            if self._paused:
                self._paused = False
                return SpeechResumed()
            if len(self._utterance) >= self._max_frames:
                return self._end()
            return None
        self._silence_run += 1
        if self._silence_run >= self.end_silence_frames or len(self._utterance) >= self._max_frames:
            return self._end()
        if self._settings.early_stt_frames and self._silence_run == self._settings.early_stt_frames:
            self._paused = True
            return SpeechPaused(audio=np.concatenate(self._utterance))
        return None

    def end_now(self) -> SpeechEnded | None:
        """End the current utterance on an external end-of-utterance signal (a streaming STT's
        endpoint); None when the caller is not speaking."""
        return self._end() if self.speaking else None

    def _end(self) -> SpeechEnded:
        event = SpeechEnded(
            audio=np.concatenate(self._utterance),
            silence_frames=self._silence_run,
            voiced_ms=self._voiced_frames * FRAME_MS,
            last_voiced_frame=self._last_voiced_index,
        )
        self.speaking = False
        self._utterance = []
        self._paused = False
        return event
