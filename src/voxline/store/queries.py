"""Reads and bulk deletes on the call store: the API's pages, a call, statistics, forgetting.

Percentiles are computed here in Python from the rows of the period asked for; simple, and
fast enough for the thousands of turns a day one deployment handles.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from voxline.store.schema import calls, conversation_messages, events, instances, turns

STREAM_STAGES = (
    "turn_detected",
    "stt_final",
    "llm_first_token",
    "first_audio",
    "first_frame_sent",
    "first_mark_echoed",
)
MAX_BUCKETS = 2000


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation, like numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 1)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _call_filters(
    since: float | None, until: float | None, number: str | None, outcome: str | None, path: str | None
) -> list:
    where = []
    if since is not None:
        where.append(calls.c.started_at >= since)
    if until is not None:
        where.append(calls.c.started_at < until)
    if number:
        where.append(
            or_(calls.c.caller.like(_like(number), escape="\\"), calls.c.called.like(_like(number), escape="\\"))
        )
    if outcome:
        where.append(calls.c.outcome == outcome)
    if path:
        where.append(calls.c.path == path)
    return where


def _call_row(row: Any) -> dict[str, Any]:
    return {
        k: getattr(row, k)
        for k in (
            "call_sid",
            "stream_sid",
            "path",
            "agent",
            "language",
            "caller",
            "called",
            "started_at",
            "ended_at",
            "outcome",
        )
    }


async def _turn_facts(connection: AsyncConnection, call_sids: list[str]) -> dict[str, tuple[int, float | None]]:
    """Turn count and voice-to-voice p50 of each call."""
    if not call_sids:
        return {}
    rows = await connection.execute(select(turns.c.call_sid, turns.c.v2v_ms).where(turns.c.call_sid.in_(call_sids)))
    found: dict[str, list[float | None]] = {}
    for sid, v2v in rows:
        found.setdefault(sid, []).append(v2v)
    return {sid: (len(values), percentile([v for v in values if v is not None], 50)) for sid, values in found.items()}


async def list_calls(
    connection: AsyncConnection,
    limit: int,
    offset: int,
    since: float | None = None,
    until: float | None = None,
    number: str | None = None,
    outcome: str | None = None,
    path: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    where = _call_filters(since, until, number, outcome, path)
    total = (await connection.execute(select(func.count()).select_from(calls).where(*where))).scalar_one()
    rows = (
        await connection.execute(
            select(calls)
            .where(*where)
            .order_by(calls.c.started_at.desc(), calls.c.call_sid.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    facts = await _turn_facts(connection, [r.call_sid for r in rows])
    page = []
    for row in rows:
        count, v2v = facts.get(row.call_sid, (0, None))
        page.append({**_call_row(row), "turn_count": count, "v2v_p50_ms": v2v})
    return total, page


def _turn(row: Any) -> dict[str, Any]:
    return {
        "index": row.turn_index,
        "started_at": row.started_at,
        "caller_text": row.caller_text,
        "agent_text": row.agent_text,
        "heard_text": row.heard_text,
        "interrupted": row.interrupted,
        "failed": row.failed,
        "language": row.language,
        "stt_early": row.stt_early,
        "outcome": row.outcome,
        "end_reason": row.end_reason,
        "kind": row.kind,
        "stages_ms": row.stages_ms or {},
    }


async def get_call(connection: AsyncConnection, call_sid: str) -> dict[str, Any] | None:
    row = (await connection.execute(select(calls).where(calls.c.call_sid == call_sid))).first()
    if row is None:
        return None
    turn_rows = (
        await connection.execute(select(turns).where(turns.c.call_sid == call_sid).order_by(turns.c.turn_index))
    ).all()
    event_rows = (
        await connection.execute(select(events).where(events.c.call_sid == call_sid).order_by(events.c.at, events.c.id))
    ).all()
    v2v = [t.v2v_ms for t in turn_rows if t.v2v_ms is not None]
    return {
        **_call_row(row),
        "turn_count": len(turn_rows),
        "v2v_p50_ms": percentile(v2v, 50),
        "turns": [_turn(t) for t in turn_rows],
        "events": [{"at": e.at, "kind": e.kind, "details": e.details or {}} for e in event_rows],
    }


async def stats(connection: AsyncConnection, since: float, until: float, bucket_s: float) -> dict[str, Any]:
    call_rows = (
        await connection.execute(
            select(calls.c.started_at, calls.c.outcome).where(calls.c.started_at >= since, calls.c.started_at < until)
        )
    ).all()
    turn_rows = (
        await connection.execute(
            select(turns.c.started_at, turns.c.stages_ms).where(turns.c.started_at >= since, turns.c.started_at < until)
        )
    ).all()
    by_outcome: dict[str, int] = {}
    for row in call_rows:
        by_outcome[row.outcome] = by_outcome.get(row.outcome, 0) + 1
    stages: dict[str, list[float]] = {stage: [] for stage in STREAM_STAGES}
    for row in turn_rows:
        for stage, value in (row.stages_ms or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                stages.setdefault(stage, []).append(float(value))
    buckets = max(1, math.ceil((until - since) / bucket_s))
    series = []
    for i in range(buckets):
        start = since + i * bucket_s
        end = min(start + bucket_s, until)
        v2v = [
            float(r.stages_ms["first_frame_sent"])
            for r in turn_rows
            if start <= r.started_at < end and isinstance((r.stages_ms or {}).get("first_frame_sent"), (int, float))
        ]
        series.append(
            {
                "start": start,
                "calls": sum(1 for r in call_rows if start <= r.started_at < end),
                "turns": sum(1 for r in turn_rows if start <= r.started_at < end),
                "v2v_p50": percentile(v2v, 50),
                "v2v_p95": percentile(v2v, 95),
            }
        )
    return {
        "since": since,
        "until": until,
        "calls": len(call_rows),
        "turns": len(turn_rows),
        "by_outcome": by_outcome,
        "stages": {k: summary(v) for k, v in stages.items()},
        "voice_to_voice": summary(stages["first_frame_sent"]),
        "series": series,
    }


async def _delete_calls(connection: AsyncConnection, call_sids: Iterable[str]) -> int:
    sids = list(call_sids)
    for start in range(0, len(sids), 500):
        chunk = sids[start : start + 500]
        for table in (turns, events, conversation_messages):
            await connection.execute(delete(table).where(table.c.call_sid.in_(chunk)))
        await connection.execute(delete(calls).where(calls.c.call_sid.in_(chunk)))
    return len(sids)


async def forget_caller(connection: AsyncConnection, number: str) -> int:
    """Every call whose caller is ``number`` (exactly), with its turns, events and history."""
    sids = (await connection.execute(select(calls.c.call_sid).where(calls.c.caller == number))).scalars().all()
    return await _delete_calls(connection, sids)


async def delete_older(connection: AsyncConnection, cutoff: float) -> int:
    """Retention: calls started before ``cutoff``, and history of calls never recorded as calls."""
    sids = (await connection.execute(select(calls.c.call_sid).where(calls.c.started_at < cutoff))).scalars().all()
    deleted = await _delete_calls(connection, sids)
    await connection.execute(delete(conversation_messages).where(conversation_messages.c.created_at < cutoff))
    return deleted


async def history(connection: AsyncConnection, call_sid: str) -> list[dict[str, Any]]:
    rows = await connection.execute(
        select(conversation_messages.c.uid, conversation_messages.c.role, conversation_messages.c.content)
        .where(conversation_messages.c.call_sid == call_sid)
        .order_by(conversation_messages.c.id)
    )
    return [{"uid": r.uid, "role": r.role, "content": r.content} for r in rows]


async def heartbeat(connection: AsyncConnection, instance_id: str, host: str, pid: int, started_at: float) -> None:
    now = time.time()
    updated = await connection.execute(
        update(instances).where(instances.c.instance_id == instance_id).values(heartbeat_at=now)
    )
    if not updated.rowcount:
        await connection.execute(
            insert(instances).values(
                instance_id=instance_id, host=host, pid=pid, started_at=started_at, heartbeat_at=now
            )
        )


async def fail_orphaned_calls(connection: AsyncConnection, live_instance: str, stale_s: float) -> list[str]:
    """Calls in progress whose process stopped beating its heart: outcome failed, event worker-died.

    A call whose owner is not in ``instances`` at all (its row swept already) counts as orphaned too.
    """
    now = time.time()
    alive = select(instances.c.instance_id).where(instances.c.heartbeat_at >= now - stale_s)
    rows = (
        await connection.execute(
            select(calls.c.call_sid, calls.c.instance_id).where(
                calls.c.outcome == "in-progress",
                calls.c.ended_at.is_(None),
                calls.c.instance_id != live_instance,
                calls.c.instance_id.not_in(alive),
            )
        )
    ).all()
    for row in rows:
        await connection.execute(
            update(calls)
            .where(calls.c.call_sid == row.call_sid, calls.c.ended_at.is_(None))
            .values(outcome="failed", ended_at=now)
        )
        await connection.execute(
            insert(events).values(
                uid=uuid.uuid4().hex,
                call_sid=row.call_sid,
                at=now,
                kind="worker-died",
                details={"instance": row.instance_id},
            )
        )
    await connection.execute(delete(instances).where(instances.c.heartbeat_at < now - stale_s))
    return [row.call_sid for row in rows]
