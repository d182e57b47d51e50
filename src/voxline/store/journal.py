"""Append-only journal files: writes that could not be kept in memory while the database was away.

Each process appends to its own file (``data_dir/store-journal/<instance>.jsonl``, one JSON
write per line) and holds an exclusive ``flock`` on it while it lives. A file whose lock can be
taken belongs to a process that is gone: the next process to start adopts it and replays it
before its own writes. Replaying is safe because every write is idempotent.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import IO

from voxline.store.schema import dumps
from voxline.store.writes import Write

log = logging.getLogger(__name__)


class Journal:
    """One journal file: appended at the end, consumed from the front, emptied once consumed."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle  # kept open for the lock it holds
        self._read_offset = 0
        self.pending = self._complete_lines()

    @classmethod
    def own(cls, folder: Path, instance_id: str) -> Journal:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{instance_id}.jsonl"
        handle = open(path, "a+", encoding="utf-8")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, handle)

    @classmethod
    def orphans(cls, folder: Path, own: Path | None = None) -> list[Journal]:
        """Journals left by processes that are gone (their lock is free), oldest first."""
        found: list[Journal] = []
        if not folder.is_dir():
            return found
        for path in sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
            if path == own:
                continue
            handle = open(path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # a live process's journal
                continue
            journal = cls(path, handle)
            if journal.pending:
                log.warning("replaying %d call-store writes left in %s", journal.pending, path.name)
                found.append(journal)
            else:
                journal.remove()
        return found

    def append(self, writes: list[Write]) -> None:
        self._handle.write("".join(dumps(w) + "\n" for w in writes))
        self._handle.flush()
        self.pending += len(writes)

    def peek(self, limit: int) -> tuple[list[Write], int, int]:
        """Up to ``limit`` writes from the front, the lines they took, and the offset after them."""
        writes: list[Write] = []
        lines = 0
        offset = self._read_offset
        with open(self.path, "rb") as reader:
            reader.seek(offset)
            while lines < limit:
                line = reader.readline()
                if not line.endswith(b"\n"):
                    break  # the end, or a line cut short by a crash: nothing more to read
                offset += len(line)
                if line.strip():
                    lines += 1
                    try:
                        writes.append(json.loads(line))
                    except json.JSONDecodeError:
                        log.error("skipping an unreadable line in %s", self.path.name)
        return writes, lines, offset

    def consumed(self, count: int, offset: int) -> None:
        self._read_offset = offset
        self.pending = max(0, self.pending - count)
        if self.pending == 0:
            self._handle.truncate(0)
            self._handle.flush()
            self._read_offset = 0

    def rewrite(self, before: list[Write]) -> None:
        """Shutdown: keep ``before`` (older, still in memory) and the unread rest, in that order."""
        rest, _, _ = self.peek(self.pending + 1)
        self._handle.truncate(0)
        self._read_offset = 0
        self.pending = 0
        self.append([*before, *rest])
        os.fsync(self._handle.fileno())

    def _complete_lines(self) -> int:
        with open(self.path, "rb") as reader:
            return sum(1 for line in reader if line.endswith(b"\n") and line.strip())

    def close(self) -> None:
        if self.pending == 0:
            self.remove()
        else:
            os.fsync(self._handle.fileno())
            self._handle.close()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._handle.close()
