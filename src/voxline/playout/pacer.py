"""Sends the agent's audio to Twilio at the pace it plays, with a mark after each piece.

Twilio buffers whatever it receives, so audio sent far ahead cannot be taken back quickly and
the server loses track of what the caller has heard. The pacer keeps at most ``ahead_ms`` of
audio in Twilio's buffer, sends whole 160-byte frames, and puts a mark after every piece. When
a mark comes back the piece was played; when the caller interrupts, ``interrupt`` sends
``clear`` and works out how much of the piece in flight was heard, before Twilio echoes the
pending marks (an echo after ``clear`` proves nothing).

It holds no reference to the call session: what the session needs to know that happens inside
the pacer's own loop (a piece's first frame went out) is pushed as a typed event; what happens
when the session calls it (a mark came back, an interruption) is returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voxline.audio.mulaw import SILENCE_BYTE
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE
from voxline.playout.line import Line

log = logging.getLogger(__name__)

FRAME_S = FRAME_SAMPLES / TELEPHONY_RATE
# Once the buffer is full, top it up 60 ms at a time rather than 20: a third of the messages and
# wake-ups per call (each costs the server and Twilio a JSON message), while the far end still has
# at least ``ahead_ms`` − 60 ms buffered, so the line never runs dry.
REFILL_FRAMES = 3


@dataclass
class Piece:
    """One clause of the agent's reply on its way to the caller."""

    turn: int
    index: int
    text: str
    audio: bytes
    speech: int = 0  # which of the turn's speeches it belongs to (a filler, then the answer)
    mark: str = ""
    frames_sent: int = 0
    first_frame_at: float | None = None
    played_at: float | None = None  # when its mark came back
    heard_fraction: float = 0.0
    cut: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.audio) / TELEPHONY_RATE

    def heard_text(self) -> str:
        if self.heard_fraction >= 1.0:
            return self.text
        words = self.text.split()
        return " ".join(words[: int(len(words) * self.heard_fraction)])


@dataclass(frozen=True, slots=True)
class FirstFrameSent:
    """The first frame of ``piece`` went out at ``at`` (the pacer's clock)."""

    piece: Piece
    at: float


PlayoutEvent = FirstFrameSent


def _ignore(_event: PlayoutEvent) -> None:
    pass


def _no_lateness(_lateness_s: float) -> None:
    pass


def _not_watched(_ulaw: bytes, _plays_at: float) -> None:
    pass


@dataclass
class _LineClock:
    """When the audio already sent will have finished playing at the far end."""

    ends_at: float = 0.0
    last_played_at: float = 0.0


class Pacer:
    def __init__(
        self,
        line: Line,
        ahead_ms: int,
        events: Callable[[PlayoutEvent], None] = _ignore,
        on_frames_sent: Callable[[float], None] = _no_lateness,
        clock: Callable[[], float] = time.monotonic,
        on_audio: Callable[[bytes, float], None] = _not_watched,
    ) -> None:
        """``events`` receives what happens in the sender loop; ``on_frames_sent`` how long the
        line ran dry before each mid-piece send (a metric); ``on_audio`` each chunk sent with the
        time the far end will start playing it (the echo reference)."""
        self._line = line
        self._ahead_s = ahead_ms / 1000.0
        self._events = events
        self._on_frames_sent = on_frames_sent
        self._on_audio = on_audio
        self._clock = clock
        self._queue: deque[Piece] = deque()
        self._current: Piece | None = None
        self._awaiting_mark: deque[Piece] = deque()
        self._far_end = _LineClock()
        self._wake = asyncio.Event()
        self._marks = 0
        self.frames_sent = 0

    @property
    def busy(self) -> bool:
        """Audio is queued, being sent, or sent and not yet played."""
        return bool(self._queue or self._current or self._awaiting_mark)

    def enqueue(self, piece: Piece) -> None:
        if not piece.audio:
            return
        remainder = len(piece.audio) % FRAME_SAMPLES
        if remainder:
            piece.audio += bytes([SILENCE_BYTE]) * (FRAME_SAMPLES - remainder)
        self._queue.append(piece)
        self._wake.set()

    async def run(self) -> None:
        """The sender loop; runs for the life of the call."""
        while True:
            if self._current is None:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._current = self._queue.popleft()
            await self._send_some(self._current)

    async def _send_some(self, piece: Piece) -> None:
        now = self._clock()
        buffered = max(0.0, self._far_end.ends_at - now)
        room = int((self._ahead_s - buffered) / FRAME_S + 1e-6)
        total = len(piece.audio) // FRAME_SAMPLES
        left = total - piece.frames_sent
        want = max(1, min(left, REFILL_FRAMES, int(self._ahead_s / FRAME_S + 1e-6)))  # the least worth a send
        if room < want:
            await asyncio.sleep(max(0.001, buffered - self._ahead_s + want * FRAME_S))
            return
        count = min(room, left)
        start = piece.frames_sent * FRAME_SAMPLES
        chunk = piece.audio[start : start + count * FRAME_SAMPLES]
        await self._line.audio(chunk)
        if piece.frames_sent:  # mid-piece: any gap before this send was the pacer's doing
            self._on_frames_sent(max(0.0, now - self._far_end.ends_at))
        self.frames_sent += count
        self._on_audio(chunk, max(self._far_end.ends_at, now))
        self._far_end.ends_at = max(self._far_end.ends_at, now) + count * FRAME_S
        if piece.first_frame_at is None:
            piece.first_frame_at = now
            self._events(FirstFrameSent(piece, now))
        piece.frames_sent += count
        if piece.frames_sent >= total and self._current is piece:
            self._marks += 1
            piece.mark = f"t{piece.turn}p{piece.index}m{self._marks}"
            self._awaiting_mark.append(piece)
            self._current = None
            await self._line.mark(piece.mark)
            log.info("audio chunk %d sent (%s)", piece.index + 1, piece.text)

    def on_mark(self, name: str) -> list[Piece]:
        """A mark came back: that piece, and any before it, have been played (returned, oldest
        first; empty for a mark that is not pending)."""
        if not any(p.mark == name for p in self._awaiting_mark):
            log.debug("ignoring mark %r (not pending)", name)
            return []
        now = self._clock()
        played: list[Piece] = []
        while self._awaiting_mark:
            piece = self._awaiting_mark.popleft()
            piece.played_at = now
            piece.heard_fraction = 1.0
            self._far_end.last_played_at = now
            played.append(piece)
            if piece.mark == name:
                break
        return played

    def cut(self) -> list[Piece]:
        """Stop talking now: drop queued and unplayed audio and work out how much of each piece was
        heard; returns the pieces that were cut. ``clear_line`` must follow, before any new audio."""
        if not self.busy:
            return []
        now = self._clock()
        cut: list[Piece] = []
        playing_from = self._far_end.last_played_at
        for piece in list(self._awaiting_mark) + ([self._current] if self._current else []):
            started = max(playing_from, now if piece.first_frame_at is None else piece.first_frame_at)
            sent_s = piece.frames_sent * FRAME_S
            heard_s = min(max(0.0, now - started), sent_s)
            piece.heard_fraction = heard_s / piece.duration_s if piece.duration_s else 0.0
            piece.cut = True
            playing_from = started + sent_s
            cut.append(piece)
        for piece in self._queue:
            piece.cut = True
            cut.append(piece)
        self._queue.clear()
        self._awaiting_mark.clear()
        self._current = None
        self._far_end.ends_at = now
        self._far_end.last_played_at = now
        return cut

    async def clear_line(self) -> None:
        """Tell the far end to drop what it has buffered."""
        await self._line.clear()

    async def interrupt(self) -> list[Piece]:
        """``cut`` and ``clear_line`` together."""
        cut = self.cut()
        await self.clear_line()
        return cut
