"""Logging set-up: one line per event, with the call it belongs to when there is one."""

from __future__ import annotations

import logging


class _CallField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        call = getattr(record, "call", None)
        record.callsuffix = f" [{call}]" if call else ""
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_CallField())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s%(callsuffix)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp", "httpx", "httpcore", "websockets", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
