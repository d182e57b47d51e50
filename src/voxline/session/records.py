"""What happened on each call, kept in memory for the calls in progress and the recent ones."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from voxline.llm.base import ChatMessage
from voxline.session.timeline import TurnRecord


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
    turns: list[TurnRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)

    def event(self, kind: str, **details: Any) -> None:
        self.events.append({"at": time.time(), "kind": kind, **details})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CallRegistry:
    """The calls in progress and a bounded list of finished ones (newest last)."""

    def __init__(self, keep: int = 200) -> None:
        self.active: dict[str, CallRecord] = {}
        self.finished: deque[CallRecord] = deque(maxlen=keep)

    def begin(self, record: CallRecord) -> None:
        self.active[record.call_sid] = record

    def end(self, record: CallRecord) -> None:
        self.active.pop(record.call_sid, None)
        self.finished.append(record)

    def find(self, call_sid: str) -> CallRecord | None:
        for record in [*self.active.values(), *reversed(self.finished)]:
            if record.call_sid == call_sid:
                return record
        return None
