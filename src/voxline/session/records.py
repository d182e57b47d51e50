"""What happened on each call: kept in memory for the calls in progress and the recent ones, and
handed, as it happens, to a ``RecordSink`` (the call store) that persists it.

The session and the webhooks only touch the record (``add_turn``, ``event``) and the registry
(``begin``, ``end``); the sink must not block: the call store just queues the write.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from voxline.llm.base import ChatMessage
from voxline.session.timeline import TurnRecord


class RecordSink(Protocol):
    """Where records go as they change. Every method returns at once (it only queues)."""

    def call_started(self, record: CallRecord) -> None: ...
    def call_ended(self, record: CallRecord) -> None: ...
    def turn_added(self, record: CallRecord, turn: TurnRecord, started_at: float) -> None: ...
    def event_added(self, record: CallRecord, event: dict[str, Any]) -> None: ...


MAX_EVENTS = 500  # per call: a caller pressing keys for an hour cannot grow the record without end


@dataclass
class CallRecord:
    call_sid: str
    stream_sid: str
    agent: str
    path: str = "streaming"
    caller: str = ""
    called: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    outcome: str = "in-progress"
    language: str = ""
    turns: list[TurnRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)
    # The turn being answered and what the caller said in it, as soon as it is transcribed (the
    # turn itself is recorded only when its reply ends); the softphone shows it at once.
    transcribed: tuple[int, str] | None = None
    sink: RecordSink | None = field(default=None, repr=False, compare=False)
    # The caller asked to be forgotten while the call went on: nothing more is stored or shown.
    forgotten: bool = field(default=False, repr=False, compare=False)
    # Set when a turn is added or transcribed, for whoever shows the call as it goes (the softphone).
    changed: asyncio.Event | None = field(default=None, repr=False, compare=False)

    def watch(self) -> asyncio.Event:
        """An event set whenever a turn is added or transcribed (clear it after reading)."""
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    def set_transcribed(self, turn: int, text: str) -> None:
        self.transcribed = (turn, text)
        if self.changed is not None:
            self.changed.set()

    def add_turn(self, turn: TurnRecord, started_at: float | None = None) -> None:
        """A finished turn; ``started_at``: when the caller stopped speaking (epoch seconds; now if None)."""
        turn.started_at = time.time() if started_at is None else started_at
        self.turns.append(turn)
        if turn.language:
            self.language = turn.language
        if self.sink is not None:
            self.sink.turn_added(self, turn, turn.started_at)
        if self.changed is not None:
            self.changed.set()

    def event(self, kind: str, **details: Any) -> None:
        """Add an event; past ``MAX_EVENTS`` one ``events-dropped`` marks the rest as not kept."""
        if len(self.events) >= MAX_EVENTS:
            return
        if len(self.events) == MAX_EVENTS - 1:
            kind, details = "events-dropped", {"limit": MAX_EVENTS}
        event = {"at": time.time(), "kind": kind, **details}
        self.events.append(event)
        if kind == "language" and isinstance(details.get("language"), str):
            self.language = details["language"]
        if self.sink is not None:
            self.sink.event_added(self, event)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, sink=None, changed=None))
        del out["sink"], out["changed"], out["forgotten"]
        return out


class CallRegistry:
    """The calls in progress and a bounded list of finished ones (newest last), fed to ``sink``."""

    def __init__(self, keep: int = 200, sink: RecordSink | None = None, language: str = "") -> None:
        self.active: dict[str, CallRecord] = {}
        self.finished: deque[CallRecord] = deque(maxlen=keep)
        self.sink = sink
        self.language = language  # the agent's, for calls that do not pick another

    def begin(self, record: CallRecord) -> None:
        self.active[record.call_sid] = record
        record.language = record.language or self.language
        if self.sink is not None:
            record.sink = self.sink
            self.sink.call_started(record)

    def end(self, record: CallRecord) -> None:
        self.active.pop(record.call_sid, None)
        if record.forgotten:
            return
        self.finished.append(record)
        if record.ended_at is None:
            record.ended_at = time.time()
        if record.sink is not None:
            record.sink.call_ended(record)

    def find(self, call_sid: str) -> CallRecord | None:
        for record in [*self.active.values(), *reversed(self.finished)]:
            if record.call_sid == call_sid and not record.forgotten:
                return record
        return None

    def live(self) -> list[CallRecord]:
        return [record for record in self.active.values() if not record.forgotten]

    def forget_caller(self, number: str) -> list[str]:
        """Drop every call of ``number`` from memory; one still in progress goes on, but nothing
        more of it is stored or shown. Returns their CallSids."""
        forgotten = [r for r in [*self.active.values(), *self.finished] if r.caller == number and not r.forgotten]
        for record in forgotten:
            record.forgotten = True
            record.sink = None
            record.turns, record.events, record.history, record.transcribed = [], [], [], None
        self.finished = deque((r for r in self.finished if not r.forgotten), maxlen=self.finished.maxlen)
        return [r.call_sid for r in forgotten]
