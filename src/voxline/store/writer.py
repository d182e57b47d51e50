"""One writer task per process: the call store's writes applied in order, never on the audio path.

Sessions and webhooks only call ``put`` (no I/O beyond, at worst, one line appended to a file).
The writer applies writes in batches, each batch one transaction. When the database is away
(locked, unwritable, PostgreSQL down) the batch is retried with backoff and nothing moves past
it, so order is kept; one error is logged per outage, and ``pending`` says how many writes wait.
Past ``memory_limit`` waiting writes, new ones go to this process's journal file instead of
memory, and the writer reads them back from there once memory is drained. Journals left by a
process that died are replayed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from pathlib import Path

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from voxline.store.journal import Journal
from voxline.store.schema import dumps
from voxline.store.writes import Write

log = logging.getLogger(__name__)

BATCH = 200
ATTEMPT_TIMEOUT_S = 20.0


def is_outage(exc: BaseException) -> bool:
    """The database is unavailable (worth retrying), as opposed to a write it will never accept."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError, TimeoutError, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class StoreWriter:
    def __init__(
        self,
        apply_batch: Callable[[list[Write]], Awaitable[None]],
        prepare: Callable[[], Awaitable[None]],
        journal_folder: Path,
        instance_id: str,
        memory_limit: int = 10_000,
        retry_min_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        self._apply_batch = apply_batch
        self._prepare = prepare
        self._folder = journal_folder
        self._instance_id = instance_id
        self.memory_limit = memory_limit
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._memory: deque[Write] = deque()
        self._journal: Journal | None = None
        self._orphans: list[Journal] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._prepared = False
        self._batch_limit = BATCH
        self._careful_left = 0
        self._put_count = 0
        self._done_count = 0
        self.outage_since: float | None = None
        self.last_error: str | None = None
        self.written = 0
        self.spilled = 0

    # -- producers (the event loop's thread; never raise, never wait) ---------------------------
    def put(self, write: Write) -> None:
        self._put_count += 1
        self._idle.clear()
        if self._journal_active() or len(self._memory) >= self.memory_limit:
            try:
                self._own_journal().append([write])
                self.spilled += 1
            except OSError as exc:  # the journal is unwritable too: keep it in memory rather than lose it
                log.error("cannot append to the call-store journal (%s); keeping the write in memory", exc)
                self._memory.append(write)
        else:
            self._memory.append(write)
        self._wake.set()

    @property
    def pending(self) -> int:
        return (
            len(self._memory) + sum(j.pending for j in self._orphans) + (self._journal.pending if self._journal else 0)
        )

    def queued(self) -> list[Write]:
        """The writes waiting in memory, oldest first (not those in a journal file)."""
        return list(self._memory)

    @property
    def available(self) -> bool:
        return self.outage_since is None

    def adopt_orphans(self) -> None:
        """Journals of processes that are gone go first (they hold the oldest writes)."""
        own = self._journal.path if self._journal else None
        self._orphans.extend(Journal.orphans(self._folder, own))
        if self._orphans:
            self._idle.clear()
            self._wake.set()

    async def applied(self, timeout_s: float) -> bool:
        """Wait until every write put before this call is in the database."""
        target = self._put_count
        deadline = time.monotonic() + timeout_s
        while self._done_count < target or not self._prepared:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def drained(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self.pending == 0 and self._prepared

    # -- the writer task -------------------------------------------------------------------------
    async def run(self) -> None:
        delay = self.retry_min_s
        while True:
            if not self._prepared:
                try:
                    await asyncio.wait_for(self._prepare(), ATTEMPT_TIMEOUT_S * 3)
                    self._prepared = True
                    self._recovered()
                    delay = self.retry_min_s
                except Exception as exc:
                    self._failed(exc, "preparing the call store")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_s)
                continue
            batch, commit = self._next_batch()
            if not batch:
                if self.pending == 0:
                    self._idle.set()
                self._wake.clear()
                if self.pending == 0:
                    await self._wake.wait()
                continue
            try:
                await asyncio.wait_for(self._apply_batch(batch), ATTEMPT_TIMEOUT_S)
            except Exception as exc:
                if is_outage(exc):
                    self._failed(exc, "writing")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_s)
                elif len(batch) > 1:
                    self._batch_limit, self._careful_left = 1, len(batch)  # find the one it refuses
                else:
                    self._reject(batch[0], exc)
                    commit()
                    self._careful_step()
                continue
            commit()
            self.written += len(batch)
            delay = self.retry_min_s
            self._recovered()
            self._careful_step()

    def _careful_step(self) -> None:
        if self._careful_left:
            self._careful_left -= 1
            if not self._careful_left:
                self._batch_limit = BATCH

    def _next_batch(self) -> tuple[list[Write], Callable[[], None]]:
        limit = self._batch_limit
        while self._orphans and self._orphans[0].pending == 0:
            self._orphans.pop(0).remove()
        source = self._orphans[0] if self._orphans else None
        if source is None and self._memory:
            batch = list(islice(self._memory, limit))

            def commit_memory() -> None:
                for _ in batch:
                    self._memory.popleft()
                self._done_count += len(batch)

            return batch, commit_memory
        source = source or (self._journal if self._journal_active() else None)
        if source is None:
            return [], lambda: None
        writes, lines, offset = source.peek(limit)
        own = source is self._journal

        def commit_journal() -> None:
            source.consumed(lines, offset)
            if own:
                self._done_count += lines

        if not writes and lines:
            commit_journal()  # only unreadable lines
        return writes, commit_journal

    def _journal_active(self) -> bool:
        return self._journal is not None and self._journal.pending > 0

    def _own_journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal.own(self._folder, self._instance_id)
        return self._journal

    def _failed(self, exc: BaseException, doing: str) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            log.error(
                "call store unavailable while %s (%s); %d writes are kept and retried until it is back",
                doing,
                self.last_error,
                self.pending,
            )
        else:
            log.debug("call store still unavailable: %s", self.last_error)

    def _recovered(self) -> None:
        if self.outage_since is not None:
            log.warning(
                "call store available again after %.1f s; %d writes still to apply",
                time.monotonic() - self.outage_since,
                self.pending,
            )
            self.outage_since = None
            self.last_error = None

    def _reject(self, write: Write, exc: BaseException) -> None:
        """A write the database refuses for good (not an outage): set aside, so the others go on."""
        log.error("call store refused a %s write (%s); kept in store-rejected.jsonl", write.get("op"), exc)
        with contextlib.suppress(OSError):
            with open(self._folder.parent / "store-rejected.jsonl", "a", encoding="utf-8") as out:
                out.write(dumps(write) + "\n")

    # -- shutdown ----------------------------------------------------------------------------------
    async def close(self, task: asyncio.Task | None, timeout_s: float) -> None:
        """Write what can be written in ``timeout_s``; keep the rest in the journal for the next start."""
        if task is not None and not task.done():
            if not await self.drained(timeout_s):
                log.warning("call store: %d writes not applied at shutdown; kept in the journal", self.pending)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if self._memory:
                self._own_journal().rewrite(list(self._memory))
                self._memory.clear()
            if self._journal is not None:
                self._journal.close()
        except OSError as exc:
            log.error("call store: could not save %d writes to the journal: %s", len(self._memory), exc)
        for orphan in self._orphans:
            orphan.close()
