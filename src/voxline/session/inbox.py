"""Typed events that a call's collaborators push to its session.

The pacer, the live STT socket and the providers' fallbacks all run on their own schedule. They
hold the call's ``Inbox`` (a queue), never the session: nothing points back at the session, so a
finished call is freed by reference counting, and the session handles each event in its own task
in arrival order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from voxline.errors import ProviderError
from voxline.playout.pacer import FirstFrameSent


@dataclass(frozen=True, slots=True)
class ProviderEndOfSpeech:
    """A streaming STT heard the caller stop."""


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A stage's provider failed for good and the agent's fallback answered instead."""

    stage: str
    error: ProviderError
    fallback: str


@dataclass(frozen=True, slots=True)
class EarlyTextReady:
    """The transcription started at the caller's pause finished (``task`` holds its result)."""

    task: asyncio.Task


@dataclass(frozen=True, slots=True)
class Stop:
    """The call is over: the session's task group winds down (pushed by ``close``)."""


SessionEvent = FirstFrameSent | ProviderEndOfSpeech | FallbackUsed | EarlyTextReady | Stop


class Inbox:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[SessionEvent] = asyncio.Queue()

    def put(self, event: SessionEvent) -> None:
        self._queue.put_nowait(event)

    def end_of_speech(self) -> None:
        self.put(ProviderEndOfSpeech())

    def fallback_used(self, stage: str, error: ProviderError, fallback: str) -> None:
        self.put(FallbackUsed(stage, error, fallback))

    def early_text_ready(self, task: asyncio.Task) -> None:
        self.put(EarlyTextReady(task))

    async def get(self) -> SessionEvent:
        return await self._queue.get()
