"""Response models of the call-record API (the contract the dashboard is built against).

All times are epoch seconds (floats); stage times are milliseconds after the caller's end of
speech, null when the stage was not reached.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Turn(BaseModel):
    index: int
    started_at: float = Field(description="When the caller stopped speaking (epoch seconds).")
    caller_text: str
    agent_text: str = Field(description="The reply as generated.")
    heard_text: str = Field(description="What the caller heard of it (less when interrupted).")
    interrupted: bool
    failed: bool
    language: str
    stt_early: bool
    outcome: str = Field(default="done", description="How the reply ended: done, interrupted or discarded.")
    end_reason: str = Field(
        default="",
        description="Why it did not finish: caller, server, key, transfer, hangup, no-words (empty when done).",
    )
    kind: str = Field(default="answer", description="answer (to the caller) or prompt (started by the agent).")
    stages_ms: dict[str, float | None] = Field(
        description="turn_detected, stt_final, llm_first_token, first_audio, first_frame_sent, first_mark_echoed; "
        "recording-path turns carry recording_s, fetch, stt, llm, tts, total."
    )


class Event(BaseModel):
    at: float
    kind: str = Field(description="error, barge-in, dtmf, language, ended-by-server, worker-died, …")
    details: dict[str, Any]


class CallSummary(BaseModel):
    call_sid: str
    stream_sid: str
    path: str = Field(description="streaming, recording or softphone")
    agent: str
    language: str
    caller: str
    called: str
    started_at: float
    ended_at: float | None
    outcome: str = Field(description="in-progress, completed, disconnected, failed, caller-silent, …")
    turn_count: int
    v2v_p50_ms: float | None = Field(description="Median voice-to-voice latency (first_frame_sent) of the call.")


class CallDetail(CallSummary):
    turns: list[Turn]
    events: list[Event]


class LiveCall(CallSummary):
    turns: list[Turn]


class CallPage(BaseModel):
    total: int
    limit: int
    offset: int
    calls: list[CallSummary]


class LiveCalls(BaseModel):
    calls: list[LiveCall]


class Percentiles(BaseModel):
    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class SeriesPoint(BaseModel):
    start: float
    calls: int
    turns: int
    v2v_p50: float | None
    v2v_p95: float | None


class Stats(BaseModel):
    since: float
    until: float
    calls: int
    turns: int
    by_outcome: dict[str, int]
    stages: dict[str, Percentiles]
    voice_to_voice: Percentiles
    series: list[SeriesPoint]


class DeletedCalls(BaseModel):
    deleted_calls: int


class PlaceCall(BaseModel):
    """``POST /api/calls``: whom to call, and from which of the business's Twilio numbers."""

    to: str = Field(description="The number to call, E.164 (+ and 7 to 15 digits).", max_length=16)
    from_: str = Field(
        default="",
        alias="from",
        max_length=16,
        description="A Twilio number of the account, E.164; empty: VOXLINE_OUTBOUND_FROM.",
    )


class PlacedCallOut(BaseModel):
    call_sid: str
    to: str
    from_: str = Field(alias="from")
    status: str = Field(description="queued: Twilio took it; progress is in the call record's call-status events.")
