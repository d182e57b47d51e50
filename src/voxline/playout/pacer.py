"""Sends the agent's audio to Twilio at the pace it plays, with a mark after each piece.

Twilio buffers whatever it receives, so audio sent far ahead cannot be taken back quickly and
the server loses track of what the caller has heard. The pacer keeps at most ``ahead_ms`` of
audio in Twilio's buffer, sends whole 160-byte frames, and puts a mark after every piece. When
a mark comes back the piece was played; when the caller interrupts, ``interrupt`` sends
``clear`` and works out how much of the piece in flight was heard, before Twilio echoes the
pending marks (an echo after ``clear`` proves nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from voxline.audio.mulaw import SILENCE_BYTE
from voxline.audio.pcm import FRAME_SAMPLES, TELEPHONY_RATE
from voxline.telephony.messages import clear_message, mark_message, media_message

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
    mark: str = ""
    frames_sent: int = 0
    first_frame_at: float | None = None
    played_at: float | None = None   # when its mark came back
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


@dataclass
class PlayoutListener:
    on_first_frame: Callable[[Piece], None] = lambda piece: None
    on_played: Callable[[Piece], None] = lambda piece: None
    on_idle: Callable[[], None] = lambda: None
    on_frames_sent: Callable[[float], None] = lambda lateness_s: None  # how long the line ran dry first


@dataclass
class _LineClock:
    """When the audio already sent will have finished playing at the far end."""

    ends_at: float = 0.0
    last_played_at: float = 0.0


class Pacer:
    def __init__(self, stream_sid: str, send: Callable[[str], Awaitable[None]], ahead_ms: int,
                 listener: PlayoutListener, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream_sid = stream_sid
        self._send = send
        self._ahead_s = ahead_ms / 1000.0
        self._listener = listener
        self._clock = clock
        self._queue: deque[Piece] = deque()
        self._current: Piece | None = None
        self._awaiting_mark: deque[Piece] = deque()
        self._line = _LineClock()
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
        buffered = max(0.0, self._line.ends_at - now)
        room = int((self._ahead_s - buffered) / FRAME_S + 1e-6)
        total = len(piece.audio) // FRAME_SAMPLES
        left = total - piece.frames_sent
        want = max(1, min(left, REFILL_FRAMES, int(self._ahead_s / FRAME_S + 1e-6)))  # the least worth a send
        if room < want:
            await asyncio.sleep(max(0.001, buffered - self._ahead_s + want * FRAME_S))
            return
        count = min(room, left)
        start = piece.frames_sent * FRAME_SAMPLES
        chunk = piece.audio[start:start + count * FRAME_SAMPLES]
        await self._send(media_message(self._stream_sid, chunk))
        if piece.frames_sent:  # mid-piece: any gap before this send was the pacer's doing
            self._listener.on_frames_sent(max(0.0, now - self._line.ends_at))
        self.frames_sent += count
        self._line.ends_at = max(self._line.ends_at, now) + count * FRAME_S
        if piece.first_frame_at is None:
            piece.first_frame_at = now
            self._listener.on_first_frame(piece)
        piece.frames_sent += count
        if piece.frames_sent >= total and self._current is piece:
            self._marks += 1
            piece.mark = f"t{piece.turn}p{piece.index}m{self._marks}"
            self._awaiting_mark.append(piece)
            self._current = None
            await self._send(mark_message(self._stream_sid, piece.mark))
            log.info("audio chunk %d sent (%s)", piece.index + 1, piece.text)

    def on_mark(self, name: str) -> Piece | None:
        """A mark came back: that piece, and any before it, have been played."""
        if not any(p.mark == name for p in self._awaiting_mark):
            log.debug("ignoring mark %r (not pending)", name)
            return None
        now = self._clock()
        while self._awaiting_mark:
            piece = self._awaiting_mark.popleft()
            piece.played_at = now
            piece.heard_fraction = 1.0
            self._line.last_played_at = now
            self._listener.on_played(piece)
            if piece.mark == name:
                break
        if not self.busy:
            self._listener.on_idle()
        return piece

    def release(self) -> None:
        """The call is over: drop its audio and the session's callbacks. They point back at the
        session, which holds this pacer: a cycle only a full garbage collection would free."""
        self._queue.clear()
        self._awaiting_mark.clear()
        self._current = None
        self._listener = PlayoutListener()

    async def interrupt(self) -> list[Piece]:
        """Stop talking now: drop queued audio, send ``clear``; returns the pieces that were cut."""
        now = self._clock()
        cut: list[Piece] = []
        playing_from = self._line.last_played_at
        for piece in list(self._awaiting_mark) + ([self._current] if self._current else []):
            started = max(playing_from, piece.first_frame_at or now)
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
        self._line.ends_at = now
        self._line.last_played_at = now
        await self._send(clear_message(self._stream_sid))
        self._listener.on_idle()
        return cut
