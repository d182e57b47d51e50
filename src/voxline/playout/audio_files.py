"""Audio files that Twilio fetches for ``<Play>``: unguessable, expiring, and nothing else readable.

Each file is named by a random 32-character token and written to one folder shared by every
worker process. A request is answered only if its token has exactly that form (so no path can
be smuggled in) and the file is younger than its time to live. A reply made for a call is listed
under that call (``owners/``, by a hash of its CallSid), so forgetting the call deletes its audio.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from pathlib import Path

from voxline.audio.wav import wav_bytes

_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


class AudioFiles:
    def __init__(self, folder: Path, ttl_s: float) -> None:
        self.folder = folder
        self.ttl_s = ttl_s
        folder.mkdir(parents=True, exist_ok=True)

    def _owner_list(self, call_sid: str) -> Path:
        return self.folder / "owners" / hashlib.sha256(call_sid.encode()).hexdigest()[:32]

    def put(self, ulaw: bytes, ttl_s: float | None = None, call_sid: str = "") -> str:
        """Store telephony audio; returns its token. ``ttl_s`` longer than the default keeps fixed
        phrases; ``call_sid`` names the call it was made for."""
        token = secrets.token_urlsafe(24)
        if call_sid:
            owners = self._owner_list(call_sid)
            owners.parent.mkdir(exist_ok=True)
            with open(owners, "a", encoding="ascii") as listing:
                listing.write(token + "\n")
        path = self.folder / f"{token}.wav"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(wav_bytes(ulaw))
        if ttl_s is not None and ttl_s > self.ttl_s:
            later = time.time() + ttl_s - self.ttl_s
            os.utime(tmp, (later, later))  # the expiry test reads the mtime
        os.replace(tmp, path)
        return token

    def get(self, token: str) -> bytes | None:
        if not _TOKEN.fullmatch(token):
            return None
        path = self.folder / f"{token}.wav"
        try:
            if time.time() - path.stat().st_mtime > self.ttl_s:
                path.unlink(missing_ok=True)
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def alive(self, token: str) -> bool:
        path = self.folder / f"{token}.wav"
        try:
            return time.time() - path.stat().st_mtime <= self.ttl_s - 60
        except FileNotFoundError:
            return False

    def forget(self, call_sid: str) -> int:
        """Delete the audio made for a call; returns how many files."""
        owners = self._owner_list(call_sid)
        try:
            tokens = owners.read_text(encoding="ascii").split()
        except FileNotFoundError:
            return 0
        removed = 0
        for token in tokens:
            if _TOKEN.fullmatch(token):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{token}.wav").unlink()
                    removed += 1
        owners.unlink(missing_ok=True)
        return removed

    def sweep(self) -> int:
        """Delete expired files (and call listings as old); returns how many audio files."""
        removed = 0
        now = time.time()
        for listing in self.folder.glob("owners/*"):
            with contextlib.suppress(FileNotFoundError):
                if now - listing.stat().st_mtime > self.ttl_s:
                    listing.unlink()
        for path in self.folder.glob("*.wav"):
            try:
                if now - path.stat().st_mtime > self.ttl_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
