"""The call store as the application sees it: record writes in, API reads out, upkeep in between.

Writes (call start/end, each turn as it ends, each event as it happens, conversation messages)
go through the writer queue. Reads (the API, a recording-path turn reading its history) go to
the database directly. Upkeep runs in one background task per process: a heartbeat for this
process, the sweep that marks calls of dead processes failed, and retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from voxline.llm.base import ChatMessage
from voxline.session.records import CallRecord
from voxline.session.timeline import TurnRecord
from voxline.store import queries
from voxline.store.database import create_engine, database_url, migrate
from voxline.store.writer import StoreWriter, is_outage
from voxline.store.writes import Write, apply

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_S = 10.0
STALE_AFTER_S = 30.0
SWEEP_S = 15.0
RETENTION_SWEEP_S = 3600.0
READ_TIMEOUT_S = 5.0
HISTORY_WAIT_S = 2.0


class StoreUnavailable(Exception):
    """A read could not reach the database (it is down or locked); the API answers 503."""


class CallStore:
    def __init__(
        self,
        url: str,
        data_dir: Path,
        retention_days: float = 90,
        memory_limit: int = 10_000,
        instance_id: str | None = None,
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.retention_days = retention_days
        self.instance_id = instance_id or uuid.uuid4().hex[:16]
        self.started_at = time.time()
        self.heartbeat_s, self.stale_after_s, self.sweep_s = HEARTBEAT_S, STALE_AFTER_S, SWEEP_S
        self.retention_sweep_s = RETENTION_SWEEP_S
        self.engine = create_engine(url)
        self._last_heartbeat = 0.0
        self._last_beat_monotonic = -math.inf
        self.writer = StoreWriter(
            self._apply_batch, self._prepare, data_dir / "store-journal", self.instance_id, memory_limit=memory_limit
        )
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def from_settings(cls, settings: Any) -> CallStore:
        return cls(
            database_url(settings.database_url, settings.data_dir),
            settings.data_dir,
            retention_days=settings.retention_days,
            memory_limit=settings.store_memory_writes,
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bring the schema to head (if the database is there now), adopt journals, start the tasks."""
        try:
            await self._prepare()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.error("call store unavailable at start-up (%s); calls are recorded once it is back", exc)
        self.writer.adopt_orphans()
        self._tasks = [
            asyncio.create_task(self.writer.run(), name="call-store-writer"),
            asyncio.create_task(self._upkeep(), name="call-store-upkeep"),
        ]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Write what can be written in ``timeout_s``; the rest stays in the journal for next start."""
        writer_task = self._tasks[0] if self._tasks else None
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.writer.close(writer_task, timeout_s)
        with contextlib.suppress(Exception):
            await self.engine.dispose()

    async def _prepare(self) -> None:
        await migrate(self.engine)
        await self._heartbeat()
        await self.sweep_orphaned_calls()

    async def _apply_batch(self, writes: list[Write]) -> None:
        async with self.engine.begin() as connection:
            for write in writes:
                await apply(connection, write)
            if time.time() - self._last_heartbeat > self.heartbeat_s / 2:
                await self._beat(connection)  # a process that just wrote is alive: say so first

    async def _beat(self, connection: AsyncConnection) -> None:
        await queries.heartbeat(connection, self.instance_id, socket.gethostname(), os.getpid(), self.started_at)
        self._last_heartbeat = time.time()
        self._last_beat_monotonic = time.monotonic()

    async def _heartbeat(self) -> None:
        async with self.engine.begin() as connection:
            await self._beat(connection)

    async def _upkeep(self) -> None:
        """Heartbeat, dead-worker sweep and retention; the first retention pass right at start-up."""
        last_sweep = time.monotonic()  # start() has just swept
        last_retention = -math.inf
        while True:
            now = time.monotonic()
            try:
                if now - self._last_beat_monotonic >= self.heartbeat_s:
                    await self._heartbeat()
                if now - last_sweep >= self.sweep_s:
                    last_sweep = now
                    await self.sweep_orphaned_calls()
                if self.retention_days > 0 and now - last_retention >= self.retention_sweep_s:
                    last_retention = now
                    await self.apply_retention()
            except Exception as exc:  # the writer reports outages; upkeep just tries again later
                log.debug("call store upkeep failed: %s", exc)
            await asyncio.sleep(min(self.heartbeat_s, self.sweep_s))

    async def sweep_orphaned_calls(self) -> list[str]:
        async with self.engine.begin() as connection:
            failed = await queries.fail_orphaned_calls(connection, self.instance_id, self.stale_after_s)
        if failed:
            log.warning("marked %d calls failed: their worker process stopped (%s)", len(failed), ", ".join(failed))
        return failed

    async def apply_retention(self) -> int:
        cutoff = time.time() - self.retention_days * 86400
        async with self.engine.begin() as connection:
            deleted = await queries.delete_older(connection, cutoff)
        if deleted:
            log.info("retention: deleted %d calls older than %g days", deleted, self.retention_days)
        return deleted

    # -- writes from call records (RecordSink) -----------------------------------------------------
    def call_started(self, record: CallRecord) -> None:
        self.writer.put(self._call_write("call-started", record))

    def call_ended(self, record: CallRecord) -> None:
        if record.path != "recording" and record.history:
            self._put_messages(record.call_sid, record.history)  # the streaming path's heard conversation
        self.writer.put(self._call_write("call-ended", record))

    def turn_added(self, record: CallRecord, turn: TurnRecord, started_at: float) -> None:
        stages = dict(turn.stages_ms)
        v2v = stages.get("first_frame_sent")
        self.writer.put(
            {
                "op": "turn",
                "call_sid": record.call_sid,
                "turn_index": turn.index,
                "started_at": started_at,
                "caller_text": turn.caller_text,
                "agent_text": turn.agent_text,
                "heard_text": turn.heard_text,
                "interrupted": turn.interrupted,
                "failed": turn.failed,
                "language": turn.language,
                "stt_early": turn.stt_early,
                "stages_ms": stages,
                "outcome": turn.outcome,
                "end_reason": turn.end_reason,
                "kind": turn.kind,
                "v2v_ms": v2v if isinstance(v2v, (int, float)) else None,
            }
        )

    def event_added(self, record: CallRecord, event: dict[str, Any]) -> None:
        details = {k: v for k, v in event.items() if k not in ("at", "kind")}
        self.writer.put(
            {
                "op": "event",
                "uid": uuid.uuid4().hex,
                "call_sid": record.call_sid,
                "at": event["at"],
                "kind": event["kind"],
                "details": details,
            }
        )
        if event["kind"] == "language" and isinstance(details.get("language"), str):
            self.writer.put({"op": "language", "call_sid": record.call_sid, "language": details["language"]})

    def _call_write(self, op: str, record: CallRecord) -> Write:
        return {
            "op": op,
            "call_sid": record.call_sid,
            "stream_sid": record.stream_sid,
            "caller": record.caller,
            "called": record.called,
            "path": record.path,
            "agent": record.agent,
            "language": record.language,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "outcome": record.outcome,
            "instance_id": self.instance_id,
        }

    # -- conversation history (the recording path) -------------------------------------------------
    def _put_messages(self, call_sid: str, messages: list[ChatMessage]) -> list[dict[str, Any]]:
        stamped = [
            {"role": m["role"], "content": m["content"], "created_at": time.time(), "uid": uuid.uuid4().hex}
            for m in messages
        ]
        self.writer.put({"op": "messages", "call_sid": call_sid, "messages": stamped})
        return stamped

    async def append(self, call_sid: str, messages: list[ChatMessage]) -> None:
        """Queue the messages and wait a little for them to be written, so the next webhook of the
        call finds them even in another process; during an outage they are written later."""
        self._put_messages(call_sid, messages)
        await self.writer.applied(HISTORY_WAIT_S)

    async def history(self, call_sid: str, fallback: list[ChatMessage] | None = None) -> list[ChatMessage]:
        """The stored conversation plus this process's messages not written yet; ``fallback`` (what
        this process remembers of the call) when the database cannot be read."""
        try:
            stored = await self.read(lambda c: queries.history(c, call_sid), timeout_s=HISTORY_WAIT_S)
        except StoreUnavailable:
            return list(fallback or [])
        seen = {m["uid"] for m in stored if m["uid"]}
        pending = [
            m
            for w in self.writer.queued()
            if w["op"] == "messages" and w["call_sid"] == call_sid
            for m in w["messages"]
            if m["uid"] not in seen
        ]
        return [{"role": m["role"], "content": m["content"]} for m in [*stored, *pending]]

    # -- reads ---------------------------------------------------------------------------------------
    async def read(self, query: Callable[[AsyncConnection], Awaitable[T]], timeout_s: float = READ_TIMEOUT_S) -> T:
        with _outage_as_unavailable():
            async with asyncio.timeout(timeout_s):
                async with self.engine.connect() as connection:
                    return await query(connection)

    async def write_now(
        self, change: Callable[[AsyncConnection], Awaitable[T]], timeout_s: float = READ_TIMEOUT_S
    ) -> T:
        """A direct change (deleting a caller) after every write queued before it is applied."""
        if not await self.writer.applied(timeout_s):
            raise StoreUnavailable(self.writer.last_error or "earlier writes are still pending")
        with _outage_as_unavailable():
            async with asyncio.timeout(timeout_s):
                async with self.engine.begin() as connection:
                    return await change(connection)

    async def forget_caller(self, number: str) -> int:
        deleted = await self.write_now(lambda c: queries.forget_caller(c, number))
        log.info("deleted %d calls of one caller on request", deleted)
        return deleted

    def health(self) -> dict[str, Any]:
        return {
            "available": self.writer.available,
            "pending_writes": self.writer.pending,
            "journaled_writes": self.writer.pending - len(self.writer.queued()),
            "error": self.writer.last_error,
        }


@contextlib.contextmanager
def _outage_as_unavailable():
    """A database that cannot be reached (or timed out) surfaces as ``StoreUnavailable``; other errors as they are."""
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(str(exc).splitlines()[0]) from exc
        raise


@contextlib.asynccontextmanager
async def open_store(settings: Any) -> AsyncIterator[CallStore]:
    """A store for a command-line tool: schema up to date, no background tasks."""
    store = CallStore.from_settings(settings)
    try:
        await migrate(store.engine)
        yield store
    finally:
        await store.engine.dispose()
