"""Per-turn stage times: where the time between the caller's last word and the reply went."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

STAGES = ("stt_final", "llm_first_token", "first_audio", "first_frame_sent", "first_mark_echoed")


@dataclass
class TurnTimeline:
    """Monotonic timestamps; ``speech_end`` is when the caller's last voiced frame arrived."""

    turn: int
    speech_end: float
    turn_detected: float
    stt_final: float | None = None
    llm_first_token: float | None = None
    first_audio: float | None = None
    first_frame_sent: float | None = None
    first_mark_echoed: float | None = None
    completed: float | None = None
    stt_early: bool = False

    def mark(self, stage: str, at: float | None = None) -> None:
        """The first time ``stage`` is reached (``at``, or now), in the session's clock."""
        if getattr(self, stage) is None:
            setattr(self, stage, time.monotonic() if at is None else at)

    def offsets_ms(self) -> dict[str, float | None]:
        """Each stage as milliseconds after the end of speech."""
        out: dict[str, float | None] = {"turn_detected": round((self.turn_detected - self.speech_end) * 1000, 1)}
        for stage in STAGES:
            value = getattr(self, stage)
            out[stage] = None if value is None else round((value - self.speech_end) * 1000, 1)
        return out


@dataclass
class TurnRecord:
    """What one turn said and how long each stage took."""

    index: int
    caller_text: str
    agent_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    stages_ms: dict[str, float | None] = field(default_factory=dict)
    stt_early: bool = False
    failed: bool = False  # a provider failed during this turn
    language: str = ""
    outcome: str = "done"  # done | interrupted | discarded (the reply's final state)
    end_reason: str = ""  # why it did not finish: caller, server, key, transfer, hangup, no-words
    kind: str = "answer"  # answer (to the caller) | prompt (started by the agent)
    started_at: float = 0.0  # epoch time of the caller's end of speech; set when the turn is recorded
