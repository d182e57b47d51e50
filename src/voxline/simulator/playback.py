"""Twilio's playback buffer, as the simulator models it.

Media from the server is queued and played in order at 8000 bytes per second. A mark is echoed
when playback reaches it (at once if nothing is queued). ``clear`` empties the queue and echoes
every pending mark. What was played is kept with its timing, so the simulator can save what the
caller heard and find the first audible frame of each reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE

AUDIBLE_DBFS = -40.0


@dataclass
class Played:
    start: float
    pcm: np.ndarray  # int16 at 8 kHz; shortened if a clear cut it


class PlaybackBuffer:
    def __init__(self, clock: Callable[[], float], echo_mark: Callable[[str], None]) -> None:
        self._clock = clock
        self._echo_mark = echo_mark
        self.played: list[Played] = []
        self.ends_at = 0.0
        self._pending: list[tuple[str, asyncio.TimerHandle | None]] = []
        self.clears: list[float] = []
        self.marks_echoed: list[tuple[str, float]] = []

    def on_media(self, ulaw: bytes) -> None:
        now = self._clock()
        start = max(now, self.ends_at)
        pcm = mulaw.decode(ulaw)
        self.played.append(Played(start, pcm))
        self.ends_at = start + pcm.size / TELEPHONY_RATE

    def on_mark(self, name: str) -> None:
        delay = self.ends_at - self._clock()
        if delay <= 0:
            self._echo(name)
            return
        handle = asyncio.get_running_loop().call_later(delay, self._reached, name)
        self._pending.append((name, handle))

    def _reached(self, name: str) -> None:
        # Marks are echoed in order; a timer firing means every earlier mark was reached too.
        while self._pending:
            pending, handle = self._pending.pop(0)
            if handle:
                handle.cancel()
            self._echo(pending)
            if pending == name:
                break

    def _echo(self, name: str) -> None:
        self.marks_echoed.append((name, self._clock()))
        self._echo_mark(name)

    def on_clear(self) -> None:
        now = self._clock()
        self.clears.append(now)
        kept: list[Played] = []
        for item in self.played:
            if item.start >= now:
                continue
            audible = int((now - item.start) * TELEPHONY_RATE)
            kept.append(Played(item.start, item.pcm[:audible]) if audible < item.pcm.size else item)
        self.played = kept
        self.ends_at = now
        pending, self._pending = self._pending, []
        for name, handle in pending:
            if handle:
                handle.cancel()
            self._echo(name)

    @property
    def playing(self) -> bool:
        return self.ends_at > self._clock() or bool(self._pending)

    def first_audible_after(self, after: float) -> float | None:
        """Time the first audible 20 ms frame started playing at or after ``after``."""
        threshold = 32768.0 * 10 ** (AUDIBLE_DBFS / 20)
        for item in self.played:
            end = item.start + item.pcm.size / TELEPHONY_RATE
            if end <= after:
                continue
            frames = item.pcm.size // FRAME_SAMPLES
            if frames == 0:
                continue
            blocks = item.pcm[: frames * FRAME_SAMPLES].astype(np.float64).reshape(frames, FRAME_SAMPLES)
            levels = np.sqrt(np.mean(blocks * blocks, axis=1))
            for index in np.nonzero(levels > threshold)[0]:
                at = item.start + index * FRAME_SAMPLES / TELEPHONY_RATE
                if at >= after:
                    return at
        return None

    def heard(self, since: float, until: float | None = None) -> np.ndarray:
        """What the caller heard between two times, silence where nothing played."""
        until = (
            until if until is not None else max([since] + [p.start + p.pcm.size / TELEPHONY_RATE for p in self.played])
        )
        out = np.zeros(int((until - since) * TELEPHONY_RATE) + 1, dtype=np.int16)
        for item in self.played:
            offset = round((item.start - since) * TELEPHONY_RATE)
            if offset >= out.size or offset + item.pcm.size <= 0:
                continue
            src = item.pcm[max(0, -offset) : max(0, out.size - offset)]
            out[max(0, offset) : max(0, offset) + src.size] = src
        return out
