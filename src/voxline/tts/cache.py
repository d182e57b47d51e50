"""A cache of synthesized audio, so a phrase said before plays with no synthesis at all.

Agents repeat themselves ("Sorry, could you say that again?", opening hours, the greeting). The
key is the engine (its name carries provider, model and voice), the language, the text and the
output format; the value is the 8 kHz μ-law audio. Two levels: an LRU in memory bounded in bytes,
and a content-addressed folder on disk (``data_dir/tts-cache/ab/abcdef….ulaw``) that survives
restarts and is shared by the worker processes, kept under a size and an age by ``prune_disk``.
Disk writes are atomic (a temporary file, then ``os.replace``) and run off the event loop; a
damaged or unreadable file is a miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

from voxline.tts.base import TextToSpeech

log = logging.getLogger(__name__)

FORMAT = "ulaw-8000"


class AudioCache:
    """Memory LRU (bounded in bytes) in front of an optional disk folder."""

    def __init__(self, max_bytes: int, folder: Path | None) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(engine: str, language: str, text: str, fmt: str = FORMAT) -> str:
        return hashlib.sha256("\x1f".join((engine, language, fmt, text)).encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.ulaw"

    async def get(self, key: str) -> bytes | None:
        audio = self._memory.get(key)
        if audio is None and self.folder is not None:
            audio = await asyncio.to_thread(self._read, key)
            if audio is not None:
                self._remember(key, audio)
        if audio is None:
            self.misses += 1
            return None
        self._memory.move_to_end(key)
        self.hits += 1
        return audio

    async def put(self, key: str, audio: bytes) -> None:
        if not audio:
            return
        self._remember(key, audio)
        if self.folder is not None:
            try:
                await asyncio.to_thread(self._write, key, audio)
            except OSError as exc:  # a full or read-only disk costs the cache, never the call
                log.warning("TTS cache: could not write %s: %s", key[:12], exc)

    def _remember(self, key: str, audio: bytes) -> None:
        if len(audio) > self.max_bytes:
            return
        previous = self._memory.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous)
        self._memory[key] = audio
        self._bytes += len(audio)
        while self._bytes > self.max_bytes:
            _, dropped = self._memory.popitem(last=False)
            self._bytes -= len(dropped)

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def _read(self, key: str) -> bytes | None:
        try:
            path = self._path(key)
            audio = path.read_bytes() or None
            os.utime(path)  # used: the disk sweep removes the least recently used first
            return audio
        except OSError:
            return None

    def prune_disk(self, max_bytes: int, max_age_s: float) -> int:
        """Keep the disk folder under ``max_bytes`` and drop files unused for ``max_age_s``, least
        recently used first; returns how many files were removed."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        files = []
        for path in self.folder.glob("*/*.ulaw"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        oldest_kept = time.time() - max_age_s
        removed = 0
        for mtime, size, path in files:
            if mtime >= oldest_kept and total <= max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
            total -= size
        return removed

    def _write(self, key: str, audio: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(audio)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class CachedTTS:
    """Any ``TextToSpeech`` behind the cache; same interface."""

    def __init__(self, inner: TextToSpeech, cache: AudioCache, language: str = "", variant: str = "") -> None:
        self.inner = inner
        self.name = inner.name
        self._cache = cache
        self._language = language
        self._engine = f"{inner.name}|{variant}" if variant else inner.name  # e.g. a speed the name does not say

    async def synthesize(self, text: str) -> bytes:
        if not text.strip():
            return b""
        key = AudioCache.key(self._engine, self._language, text)
        audio = await self._cache.get(key)
        if audio is None:
            audio = await self.inner.synthesize(text)
            await self._cache.put(key, audio)
        return audio

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # engine extras (warm_up, synthesize_blocking, …)
