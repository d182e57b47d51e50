"""What the agent says in one turn, as explicit states, and how it ends.

A ``Reply`` is one agent turn: the greeting, an answer to the caller, or a prompt the agent starts
itself ("are you still there?", goodbye). It moves through

    transcribing → generating → playing → done
          └────────────┴───────────┴──→ interrupted | discarded

and says why it stopped (``EndReason``). Its audio is one or more ``Speech``es (a filler, then the
answer), each a list of pieces handed to the pacer; ``await speech.heard()`` and ``await
reply.ended()`` replace polling. Only the session's ``TurnBook.settle`` ends a reply, so the
record, the history and the metrics are kept in one place.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from voxline.audio.pcm import FRAME_SAMPLES
from voxline.playout.pacer import Piece
from voxline.session.timeline import TurnTimeline


class ReplyState(StrEnum):
    TRANSCRIBING = "transcribing"  # the caller's words are being turned into text
    GENERATING = "generating"  # the LLM (or a fixed phrase) is producing speech
    PLAYING = "playing"  # everything is generated; audio is on its way to the caller
    DONE = "done"  # the caller heard all of it
    INTERRUPTED = "interrupted"  # stopped with part of it heard
    DISCARDED = "discarded"  # ended before the caller heard anything


TERMINAL = frozenset({ReplyState.DONE, ReplyState.INTERRUPTED, ReplyState.DISCARDED})
_NEXT: dict[ReplyState, frozenset[ReplyState]] = {
    ReplyState.TRANSCRIBING: frozenset({ReplyState.GENERATING, ReplyState.INTERRUPTED, ReplyState.DISCARDED}),
    ReplyState.GENERATING: frozenset({ReplyState.PLAYING, ReplyState.INTERRUPTED, ReplyState.DISCARDED}),
    ReplyState.PLAYING: frozenset({ReplyState.DONE, ReplyState.INTERRUPTED, ReplyState.DISCARDED}),
}


class EndReason(StrEnum):
    """Why a reply stopped before it was all heard (or why it was never answered)."""

    CALLER = "caller"  # the caller spoke over it (barge-in) or went on speaking
    SERVER = "server"  # the server ended the call (duration limit, silence, shutdown)
    KEY = "key"  # a keypad press took over
    TRANSFER = "transfer"  # the call is handed to a person
    HANGUP = "hangup"  # the call ended under it
    NO_WORDS = "no-words"  # nothing was recognised in what the caller said
    ERROR = "error"  # a bug stopped it (logged as an internal error)


class ReplyKind(StrEnum):
    GREETING = "greeting"
    ANSWER = "answer"  # to something the caller said
    PROMPT = "prompt"  # started by the agent: still there?, goodbye, a language confirmation


class InvalidTransition(RuntimeError):
    pass


@dataclass(eq=False)
class Speech:
    """One thing said in a turn, as its pieces reach the pacer."""

    index: int
    pieces: list[Piece] = field(default_factory=list)
    closed: bool = False  # no more pieces will be added
    _heard: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def all_played(self) -> bool:
        return self.closed and all(p.played_at is not None for p in self.pieces)

    def text(self) -> str:
        return " ".join(p.text for p in self.pieces)

    def heard_text(self) -> str:
        return " ".join(t for t in (p.heard_text() for p in self.pieces) if t)

    async def heard(self) -> bool:
        """Waits until it was all heard (True) or its reply ended first (False)."""
        return await asyncio.shield(self._heard)

    def _settle(self, heard: bool) -> None:
        if not self._heard.done():
            self._heard.set_result(heard)


@dataclass(eq=False)
class Reply:
    turn: int
    kind: ReplyKind
    timeline: TurnTimeline | None = None  # answers only: where the time went
    caller_text: str = ""
    remember: bool = False  # a fixed phrase that belongs in the conversation (greeting, confirmation)
    state: ReplyState = ReplyState.GENERATING
    reason: EndReason | None = None
    speeches: list[Speech] = field(default_factory=list)
    generated: str = ""
    failed: bool = False  # a provider failed during this turn
    task: asyncio.Task[None] | None = None
    # The caller went on speaking while this turn was transcribed: it ends once the words are
    # known (they are carried into the next turn), without being answered.
    stop_after_transcript: EndReason | None = None
    # Speech over the agent paused it: its audio waits in ``withheld`` (the unheard rest of what was
    # playing, then what was generated since) until the caller's words say resume or interrupt.
    paused: bool = False
    cleared: bool = False  # its audio was cleared from the line when it paused
    # Started at the caller's pause before the turn was confirmed: nothing goes to the line, and it
    # is neither live nor recorded until the turn ends (then it is adopted), or it is dropped.
    speculative: bool = False
    withheld: list[Piece] = field(default_factory=list)
    _ended: asyncio.Future[ReplyState] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL

    @property
    def pieces(self) -> list[Piece]:
        return [p for s in self.speeches for p in s.pieces]

    @property
    def audible(self) -> bool:
        """Some of its audio has gone out to the caller."""
        return any(p.first_frame_at is not None for p in self.pieces)

    def advance(self, state: ReplyState) -> None:
        """Move to a non-terminal state (ending goes through ``TurnBook.settle``)."""
        if state in TERMINAL:
            raise InvalidTransition(f"turn {self.turn}: {state} is reached through TurnBook.settle")
        self._move(state)

    def open_speech(self) -> Speech:
        speech = Speech(index=len(self.speeches))
        self.speeches.append(speech)
        return speech

    def all_heard(self) -> bool:
        return self.state is ReplyState.PLAYING and all(s.all_played for s in self.speeches)

    def heard_text(self) -> str:
        return " ".join(t for t in (s.heard_text() for s in self.speeches) if t)

    def keep_unheard(self, cut: list[Piece], now: float) -> list[Piece]:
        """Its audio was cut off the line: what the caller heard of each piece stays as a played
        piece, and the unheard rest becomes a new piece right after it. Returns those rests, in
        order, ready to go back to the pacer (nothing heard is sent again)."""
        rests: list[Piece] = []
        for piece in cut:
            if piece.turn != self.turn or piece.speech >= len(self.speeches):
                continue
            if not piece.frames_sent:  # never on the line: it goes again as it is
                piece.cut, piece.heard_fraction = False, 0.0
                rests.append(piece)
                continue
            frames = len(piece.audio) // FRAME_SAMPLES
            heard_frames = min(frames, int(piece.heard_fraction * frames + 1e-6))
            words = piece.text.split()
            heard_words = int(len(words) * heard_frames / frames) if frames else len(words)
            rest = Piece(
                turn=piece.turn,
                index=piece.index,
                text=" ".join(words[heard_words:]),
                audio=piece.audio[heard_frames * FRAME_SAMPLES :],
                speech=piece.speech,
            )
            piece.text, piece.audio = " ".join(words[:heard_words]), piece.audio[: heard_frames * FRAME_SAMPLES]
            piece.heard_fraction, piece.played_at = 1.0, now
            if rest.audio:
                pieces = self.speeches[piece.speech].pieces
                pieces.insert(pieces.index(piece) + 1, rest)
                rests.append(rest)
        return rests

    async def wait(self) -> ReplyState:
        """Waits until the reply ended; returns how."""
        return await asyncio.shield(self._ended)

    def _move(self, state: ReplyState) -> None:
        if state not in _NEXT.get(self.state, frozenset()):
            raise InvalidTransition(f"turn {self.turn}: {self.state} → {state}")
        self.state = state

    def _end(self, state: ReplyState, reason: EndReason | None) -> None:
        self._move(state)
        self.reason = reason
        for speech in self.speeches:
            speech._settle(state is ReplyState.DONE or speech.all_played)
        if not self._ended.done():
            self._ended.set_result(state)
