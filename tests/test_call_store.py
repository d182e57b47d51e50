"""The call store on real databases (a SQLite file; a PostgreSQL cluster started for the tests):
migrations, writes as they happen, outages, the journal, dead workers, retention, forgetting."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

from store_backends import Backend, backend, postgres  # noqa: F401  (fixtures)
from voxline.session.records import CallRecord, CallRegistry
from voxline.session.timeline import TurnRecord
from voxline.store import CallStore, queries
from voxline.store.schema import calls, conversation_messages, events, turns

HINDI = "नमस्ते, मुझे कल का अपॉइंटमेंट चाहिए।"


def make_store(backend: Backend, **options) -> CallStore:
    store = CallStore(backend.url, backend.data_dir, **options)
    store.writer.retry_min_s, store.writer.retry_max_s = 0.05, 0.3
    return store


def turn(index: int, text: str = "hello", v2v: float = 800.0) -> TurnRecord:
    return TurnRecord(
        index=index,
        caller_text=text,
        agent_text=f"reply {index}",
        heard_text=f"reply {index}",
        stages_ms={"turn_detected": 300.0, "stt_final": 400.0, "first_frame_sent": v2v},
        language="en",
    )


def begin(registry: CallRegistry, sid: str, caller: str = "+15005550006", **fields) -> CallRecord:
    record = CallRecord(
        call_sid=sid, stream_sid="MZ" + sid[2:], agent="front-desk", caller=caller, called="+15005550001", **fields
    )
    registry.begin(record)
    return record


async def stored_call(store: CallStore, sid: str) -> dict | None:
    return await store.read(lambda c: queries.get_call(c, sid))


async def test_migrations_create_the_schema_from_empty(backend: Backend):
    store = make_store(backend)
    await store.start()
    try:

        def tables(connection):
            from sqlalchemy import inspect

            return set(inspect(connection).get_table_names())

        names = await store.read(lambda c: c.run_sync(tables))
        assert {"calls", "turns", "events", "conversation_messages", "instances", "alembic_version"} <= names
        from sqlalchemy import text

        version = await store.read(lambda c: c.execute(text("SELECT version_num FROM alembic_version")))
        assert version.scalar_one() == "0003"
    finally:
        await store.stop()


async def test_a_database_of_the_old_code_opens_and_keeps_its_history(backend: Backend):
    # The schema the first version created with create_all: no alembic_version, no uid column.
    id_type = "INTEGER PRIMARY KEY AUTOINCREMENT" if backend.name == "sqlite" else "SERIAL PRIMARY KEY"
    backend.sql(
        f"CREATE TABLE conversation_messages (id {id_type}, call_sid VARCHAR(64) NOT NULL, "
        "role VARCHAR(16) NOT NULL, content TEXT NOT NULL, created_at FLOAT NOT NULL);"
        "CREATE INDEX ix_conversation_messages_call_sid ON conversation_messages (call_sid);"
        "INSERT INTO conversation_messages (call_sid, role, content, created_at) VALUES "
        f"('CAold', 'assistant', 'Hello', {time.time()}), ('CAold', 'user', '{HINDI}', {time.time()});"
    )
    store = make_store(backend)
    await store.start()
    try:
        assert await store.history("CAold") == [
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": HINDI},
        ]
        await store.append("CAold", [{"role": "assistant", "content": "जी हाँ"}])
        assert (await store.history("CAold"))[-1] == {"role": "assistant", "content": "जी हाँ"}
    finally:
        await store.stop()


async def test_each_turn_and_event_is_written_while_the_call_goes_on(backend: Backend):
    store = make_store(backend)
    await store.start()
    try:
        registry = CallRegistry(sink=store, language="en")
        record = begin(registry, "CAlive1")
        assert await store.writer.applied(5)
        call = await stored_call(store, "CAlive1")
        assert call is not None and call["outcome"] == "in-progress" and call["ended_at"] is None

        record.add_turn(turn(1, HINDI), started_at=time.time() - 1.0)
        record.event("language", language="hi", by="keypad")
        assert await store.writer.applied(5)
        call = await stored_call(store, "CAlive1")
        assert call["outcome"] == "in-progress" and call["language"] == "hi"
        assert [t["caller_text"] for t in call["turns"]] == [HINDI]  # Devanagari intact
        assert call["turns"][0]["stages_ms"]["first_frame_sent"] == 800.0
        assert call["events"][0]["kind"] == "language" and call["events"][0]["details"] == {
            "language": "hi",
            "by": "keypad",
        }

        cut = turn(2)
        cut.outcome, cut.end_reason, cut.interrupted = "interrupted", "caller", True
        record.add_turn(cut, started_at=time.time() - 0.5)
        record.outcome = "completed"
        registry.end(record)
        assert await store.writer.applied(5)
        call = await stored_call(store, "CAlive1")
        assert call["outcome"] == "completed" and call["ended_at"] is not None and call["turn_count"] == 2
        assert [(t["outcome"], t["end_reason"], t["kind"]) for t in call["turns"]] == [
            ("done", "", "answer"),
            ("interrupted", "caller", "answer"),
        ]
    finally:
        await store.stop()


async def test_an_outage_loses_nothing_and_is_logged_once(backend: Backend, caplog):
    store = make_store(backend)
    await store.start()
    try:
        registry = CallRegistry(sink=store, language="en")
        assert await store.writer.applied(5)
        caplog.set_level(logging.INFO, logger="voxline.store")
        with backend.outage():
            record = begin(registry, "CAout1")
            for i in range(1, 6):
                started = time.monotonic()
                record.add_turn(turn(i, f"turn {i} {HINDI}"))
                record.event("barge-in", turn=i)
                assert time.monotonic() - started < 0.05  # the session never waits on the database
                await asyncio.sleep(0.3)
            record.outcome = "completed"
            registry.end(record)
            await asyncio.sleep(1.0)
            assert not store.writer.available
            assert store.health()["pending_writes"] == 12
        assert await store.writer.drained(30), store.health()
        call = await stored_call(store, "CAout1")
        assert call["outcome"] == "completed"
        assert [t["caller_text"] for t in call["turns"]] == [f"turn {i} {HINDI}" for i in range(1, 6)]
        assert [e["details"]["turn"] for e in call["events"]] == [1, 2, 3, 4, 5]
        unavailable = [r for r in caplog.records if "call store unavailable" in r.getMessage()]
        assert len(unavailable) == 1, [r.getMessage() for r in unavailable]
        assert any("available again" in r.getMessage() for r in caplog.records)
        assert store.health() == {"available": True, "pending_writes": 0, "journaled_writes": 0, "error": None}
    finally:
        await store.stop()


async def test_writes_past_the_memory_bound_go_to_the_journal_and_are_replayed_after_a_restart(backend: Backend):
    store = make_store(backend, memory_limit=3)
    await store.start()
    registry = CallRegistry(sink=store, language="en")
    assert await store.writer.applied(5)
    journal_folder = backend.data_dir / "store-journal"
    with backend.outage():
        record = begin(registry, "CAjournal")
        for i in range(1, 9):
            record.add_turn(turn(i))
        record.outcome = "completed"
        registry.end(record)
        assert store.writer.pending == 10
        assert len(store.writer.queued()) == 3  # the memory bound holds
        await store.stop(timeout_s=0.5)  # shutdown while the database is away
    files = list(journal_folder.glob("*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]
    assert [w["op"] for w in lines] == ["call-started", *["turn"] * 8, "call-ended"]  # in order

    restarted = make_store(backend)
    await restarted.start()
    try:
        assert await restarted.writer.drained(30), restarted.health()
        call = await stored_call(restarted, "CAjournal")
        assert call["outcome"] == "completed" and [t["index"] for t in call["turns"]] == list(range(1, 9))
        assert not list(journal_folder.glob("*.jsonl"))
    finally:
        await restarted.stop()


async def test_replaying_a_journal_twice_changes_nothing(backend: Backend):
    store = make_store(backend)
    await store.start()
    try:
        registry = CallRegistry(sink=store, language="en")
        record = begin(registry, "CAtwice")
        record.add_turn(turn(1))
        record.event("dtmf", digit="1")
        store._put_messages("CAtwice", [{"role": "user", "content": "hi"}])
        registry.end(record)
        written = [dict(w) for w in store.writer.queued()]
        assert await store.writer.applied(5)
        for w in written:  # as a journal replay after a crash would, one written before turns had an outcome
            store.writer.put({k: v for k, v in w.items() if k not in ("outcome", "end_reason", "kind")})
        assert await store.writer.applied(5)
        call = await stored_call(store, "CAtwice")
        assert call["turn_count"] == 1 and len(call["events"]) == 1
        assert await store.history("CAtwice") == [{"role": "user", "content": "hi"}]
    finally:
        await store.stop()


async def test_calls_of_a_dead_worker_are_marked_failed(backend: Backend):
    dead = make_store(backend)
    await dead.start()
    record = begin(CallRegistry(sink=dead, language="en"), "CAdead")
    record.add_turn(turn(1))
    assert await dead.writer.applied(5)
    await dead.stop()  # like a killed process: the call is left in progress, the heartbeat stops

    live = make_store(backend)
    live.stale_after_s, live.sweep_s, live.heartbeat_s = 1.0, 0.2, 0.2
    await live.start()
    try:
        begin(CallRegistry(sink=live, language="en"), "CAmine")  # the live process's own call is left alone
        deadline = time.monotonic() + 10
        while (call := await stored_call(live, "CAdead"))["outcome"] == "in-progress":
            assert time.monotonic() < deadline, "the periodic sweep did not mark the call failed"
            await asyncio.sleep(0.2)
        assert call["outcome"] == "failed" and call["ended_at"] is not None
        assert [e["kind"] for e in call["events"]] == ["worker-died"]
        assert call["turn_count"] == 1
        assert (await stored_call(live, "CAmine"))["outcome"] == "in-progress"
    finally:
        await live.stop()


async def test_the_start_up_sweep_fails_calls_of_a_process_gone_for_long(backend: Backend):
    old = make_store(backend)
    await old.start()
    begin(CallRegistry(sink=old, language="en"), "CAstale")
    assert await old.writer.applied(5)
    await old.stop()
    backend.sql(f"UPDATE instances SET heartbeat_at = {time.time() - 120}")
    fresh = make_store(backend)
    await fresh.start()  # default 30 s staleness: the start-up sweep catches it
    try:
        call = await stored_call(fresh, "CAstale")
        assert call["outcome"] == "failed" and call["events"][0]["kind"] == "worker-died"
    finally:
        await fresh.stop()


async def seed(
    store: CallStore,
    sid: str,
    caller: str,
    started_at: float,
    outcome: str = "completed",
    path: str = "streaming",
    v2vs: tuple[float, ...] = (800.0,),
) -> None:
    registry = CallRegistry(sink=store, language="en")
    record = begin(registry, sid, caller=caller, started_at=started_at, path=path)
    for i, v2v in enumerate(v2vs, 1):
        store.turn_added(record, turn(i, v2v=v2v), started_at + i)
    record.event("dtmf", digit="1")
    store.writer.put(
        {
            "op": "messages",
            "call_sid": sid,
            "messages": [{"role": "user", "content": "hi", "created_at": started_at, "uid": sid + "m"}],
        }
    )
    record.outcome, record.ended_at = outcome, started_at + 60
    registry.end(record)


async def count_rows(store: CallStore, sid: str) -> int:
    from sqlalchemy import func, select

    async def count(connection):
        total = 0
        for table in (calls, turns, events, conversation_messages):
            total += (
                await connection.execute(select(func.count()).select_from(table).where(table.c.call_sid == sid))
            ).scalar_one()
        return total

    return await store.read(count)


async def test_retention_deletes_old_calls_with_everything_they_hold(backend: Backend):
    store = make_store(backend, retention_days=30)
    await store.start()
    try:
        now = time.time()
        await seed(store, "CAancient", "+111", now - 40 * 86400)
        await seed(store, "CArecent", "+111", now - 2 * 86400)
        assert await store.writer.applied(5)
        assert await count_rows(store, "CAancient") == 4
        assert await store.apply_retention() == 1
        assert await count_rows(store, "CAancient") == 0
        assert await count_rows(store, "CArecent") == 4
    finally:
        await store.stop()


async def test_retention_runs_by_itself_and_zero_keeps_everything(backend: Backend):
    keep = make_store(backend, retention_days=0)
    keep.heartbeat_s = keep.sweep_s = keep.retention_sweep_s = 0.1
    await keep.start()
    await seed(keep, "CAkept", "+222", time.time() - 4000 * 86400)
    await asyncio.sleep(0.5)
    assert await count_rows(keep, "CAkept") == 4
    await keep.stop()
    purge = make_store(backend, retention_days=1)
    purge.heartbeat_s = purge.sweep_s = purge.retention_sweep_s = 0.1
    await purge.start()
    try:
        deadline = time.monotonic() + 10
        while await count_rows(purge, "CAkept"):
            assert time.monotonic() < deadline, "the periodic retention sweep did not run"
            await asyncio.sleep(0.1)
    finally:
        await purge.stop()


async def test_forgetting_a_caller_deletes_only_their_calls(backend: Backend):
    store = make_store(backend)
    await store.start()
    try:
        now = time.time()
        await seed(store, "CAf1", "+15550001", now - 100)
        await seed(store, "CAf2", "+15550001", now - 50)
        await seed(store, "CAother", "+155500011", now - 10)  # a longer number that contains it
        assert await store.forget_caller("+15550001") == 2
        assert await count_rows(store, "CAf1") == 0 and await count_rows(store, "CAf2") == 0
        assert await count_rows(store, "CAother") == 4
    finally:
        await store.stop()


def test_percentiles_interpolate_like_numpy():
    import numpy as np

    values = [float(v) for v in (120, 950, 400, 1300, 610, 777, 2000)]
    for q in (50, 95, 99):
        assert queries.percentile(values, q) == round(float(np.percentile(values, q)), 1)
    assert queries.percentile([], 50) is None


def test_the_default_store_is_a_sqlite_file_in_wal_mode(tmp_path):
    from voxline.config import Settings

    settings = Settings(data_dir=tmp_path)
    store = CallStore.from_settings(settings)

    async def start_stop():
        await store.start()
        await store.stop()

    asyncio.run(start_stop())
    with sqlite3.connect(tmp_path / "voxline.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
