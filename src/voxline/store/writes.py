"""The writes a process makes to the call store, as plain JSON-able dicts applied idempotently.

A write is a dict with an ``op`` key. Being plain data, it can wait in memory, spill to the
journal file and be replayed after a restart; being idempotent (upserts on natural keys, random
``uid``s for events and messages), applying it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from voxline.store.schema import calls, conversation_messages, events, turns

Write = dict[str, Any]

CALL_FIELDS = (
    "call_sid",
    "stream_sid",
    "caller",
    "called",
    "path",
    "agent",
    "language",
    "started_at",
    "ended_at",
    "outcome",
    "instance_id",
)
TURN_FIELDS = (
    "call_sid",
    "turn_index",
    "started_at",
    "caller_text",
    "agent_text",
    "heard_text",
    "interrupted",
    "failed",
    "language",
    "stt_early",
    "stages_ms",
    "v2v_ms",
    "outcome",
    "end_reason",
    "kind",
)

TURN_DEFAULTS = {"outcome": "done", "end_reason": "", "kind": "answer"}


def _insert(connection: AsyncConnection, table):
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    return dialect.insert(table)


async def _call_started(connection: AsyncConnection, write: Write) -> None:
    """Insert the call; a call already there (another worker began it) only changes hands if in progress."""
    row = {k: write[k] for k in CALL_FIELDS}
    statement = _insert(connection, calls).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["call_sid"],
        set_={"instance_id": row["instance_id"]},
        where=and_(calls.c.ended_at.is_(None), calls.c.outcome == "in-progress"),
    )
    await connection.execute(statement)


async def _call_ended(connection: AsyncConnection, write: Write) -> None:
    row = {k: write[k] for k in CALL_FIELDS}
    statement = _insert(connection, calls).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["call_sid"], set_={k: row[k] for k in ("ended_at", "outcome", "language", "stream_sid")}
    )
    await connection.execute(statement)


async def _turn(connection: AsyncConnection, write: Write) -> None:
    # A journal written before a field existed replays with that field's default.
    row = {k: write.get(k, TURN_DEFAULTS.get(k)) for k in TURN_FIELDS}
    statement = _insert(connection, turns).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=["call_sid", "turn_index"], set_={k: row[k] for k in TURN_FIELDS[2:]}
    )
    await connection.execute(statement)


async def _event(connection: AsyncConnection, write: Write) -> None:
    row = {k: write[k] for k in ("uid", "call_sid", "at", "kind", "details")}
    await connection.execute(_insert(connection, events).values(row).on_conflict_do_nothing())


async def _messages(connection: AsyncConnection, write: Write) -> None:
    rows = [
        {
            "call_sid": write["call_sid"],
            "role": m["role"],
            "content": m["content"],
            "created_at": m["created_at"],
            "uid": m["uid"],
        }
        for m in write["messages"]
    ]
    if rows:
        await connection.execute(_insert(connection, conversation_messages).values(rows).on_conflict_do_nothing())


async def _language(connection: AsyncConnection, write: Write) -> None:
    await connection.execute(
        update(calls).where(calls.c.call_sid == write["call_sid"]).values(language=write["language"])
    )


APPLY: dict[str, Callable[[AsyncConnection, Write], Any]] = {
    "call-started": _call_started,
    "call-ended": _call_ended,
    "turn": _turn,
    "event": _event,
    "messages": _messages,
    "language": _language,
}


async def apply(connection: AsyncConnection, write: Write) -> None:
    await APPLY[write["op"]](connection, write)
