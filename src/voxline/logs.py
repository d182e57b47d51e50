"""Logging set-up: one line per event, with the call it belongs to when there is one.

What callers say and their numbers are personal data: code logs them wrapped in ``Private``, and
the handler writes them only when ``VOXLINE_LOG_PERSONAL_DATA`` is on (a developer's machine);
otherwise the line says how long the value was and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class Private:
    """A log argument that is personal data (a caller's number, a transcript)."""

    value: object

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, Private) for a in record.args):
            record.args = tuple(
                f"[{len(str(a.value))} characters withheld]" if isinstance(a, Private) else a for a in record.args
            )
        return True


class _CallField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        call = getattr(record, "call", None)
        record.callsuffix = f" [{call}]" if call else ""
        return True


def configure(level: str = "INFO", personal_data: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_CallField())
    if not personal_data:
        handler.addFilter(_Redact())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s%(callsuffix)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp", "httpx", "httpcore", "websockets", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
