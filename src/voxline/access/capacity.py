"""How many streaming calls this instance carries: one slot per call, from the webhook that admits
it to the end of its stream.

A slot is *reserved* when the voice webhook answers with ``<Connect><Stream>`` and becomes
*streaming* when that call's ``start`` arrives; a stream whose webhook went to another instance
(or a softphone call, which has none) takes a free slot at ``start``. The slot is released when
the stream ends or is refused, or, for a reservation whose stream never comes, after a short hold.
Counting by CallSid means a second stream for the same call is refused rather than counted, and a
call's own reservation never counts against its own stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class SlotState(StrEnum):
    RESERVED = "reserved"  # the webhook answered; the stream has not started yet
    STREAMING = "streaming"  # the call's stream is running


class Claim(StrEnum):
    GRANTED = "granted"
    FULL = "full"  # every slot is taken by other calls
    DUPLICATE = "duplicate"  # this call already has a running stream


@dataclass
class _Slot:
    state: SlotState
    expires_at: float  # reservations only; a streaming slot lasts until released


class CallSlots:
    def __init__(self, limit: int, hold_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.hold_s = hold_s
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    def in_use(self) -> int:
        """Slots taken now (expired reservations are given back first)."""
        now = self._clock()
        for call_sid in [sid for sid, s in self._slots.items() if s.state is SlotState.RESERVED and s.expires_at < now]:
            del self._slots[call_sid]
        return len(self._slots)

    def state(self, call_sid: str) -> SlotState | None:
        self.in_use()
        slot = self._slots.get(call_sid)
        return slot.state if slot else None

    def reserve(self, call_sid: str) -> bool:
        """At the voice webhook: hold a slot for the call's stream. A webhook retried for a call
        that already holds one gets it again, without a second count."""
        if self.state(call_sid) is not None:
            return True
        if not call_sid or self.in_use() >= self.limit:
            return False
        self._slots[call_sid] = _Slot(SlotState.RESERVED, self._clock() + self.hold_s)
        return True

    def claim(self, call_sid: str) -> Claim:
        """At the stream's ``start``: turn the call's reservation into a running call, or take a
        free slot for a call admitted elsewhere."""
        state = self.state(call_sid)
        if state is SlotState.STREAMING:
            return Claim.DUPLICATE
        if state is None and self.in_use() >= self.limit:
            return Claim.FULL
        self._slots[call_sid] = _Slot(SlotState.STREAMING, float("inf"))
        return Claim.GRANTED

    def release(self, call_sid: str) -> None:
        self._slots.pop(call_sid, None)


class UnstartedSockets:
    """Stream sockets that have not sent ``start`` yet, per client address: they hold no call slot,
    so they are bounded here (and each is closed if ``start`` does not come in time)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._open: dict[str, int] = {}

    def open(self, client: str) -> bool:
        if self._open.get(client, 0) >= self.per_client:
            return False
        self._open[client] = self._open.get(client, 0) + 1
        return True

    def done(self, client: str) -> None:
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)
