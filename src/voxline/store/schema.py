"""The call store's tables (SQLAlchemy Core), shared by the writer, the API queries and migrations.

Times are epoch seconds as floats, like the API. Every row a write creates has a natural or
random unique key, so replaying a write (after an outage, or from the journal) changes nothing.
"""

from __future__ import annotations

import json

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

calls = Table(
    "calls",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("stream_sid", String(64), nullable=False, default=""),
    Column("caller", String(64), nullable=False, default=""),
    Column("called", String(64), nullable=False, default=""),
    Column("path", String(16), nullable=False, default="streaming"),
    Column("agent", String(128), nullable=False, default=""),
    Column("language", String(16), nullable=False, default=""),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("outcome", String(32), nullable=False, default="in-progress"),
    Column("instance_id", String(64), nullable=False, default=""),
    Index("ix_calls_started_at", "started_at"),
    Index("ix_calls_caller", "caller"),
    Index("ix_calls_outcome", "outcome"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False),
    Column("turn_index", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("caller_text", Text, nullable=False, default=""),
    Column("agent_text", Text, nullable=False, default=""),
    Column("heard_text", Text, nullable=False, default=""),
    Column("interrupted", Boolean, nullable=False, default=False),
    Column("failed", Boolean, nullable=False, default=False),
    Column("language", String(16), nullable=False, default=""),
    Column("stt_early", Boolean, nullable=False, default=False),
    Column("outcome", String(16), nullable=False, default="done", server_default="done"),
    Column("end_reason", String(16), nullable=False, default="", server_default=""),
    Column("kind", String(16), nullable=False, default="answer", server_default="answer"),
    Column("stages_ms", JSON, nullable=False),
    Column("v2v_ms", Float, nullable=True),  # = stages_ms.first_frame_sent, a column for summaries
    UniqueConstraint("call_sid", "turn_index", name="uq_turns_call_index"),
    Index("ix_turns_started_at", "started_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32), nullable=False, unique=True),
    Column("call_sid", String(64), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("details", JSON, nullable=False),
)

conversation_messages = Table(
    "conversation_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("uid", String(32), nullable=True),  # NULL on rows written before it existed
    Index("uq_conversation_messages_uid", "uid", unique=True),
)

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("host", String(255), nullable=False, default=""),
    Column("pid", Integer, nullable=False, default=0),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)


def dumps(value: object) -> str:
    """JSON as stored: non-ASCII text (Devanagari…) kept as is, readable in the database."""
    return json.dumps(value, ensure_ascii=False)
