"""Calls this server placed: how many may be placed a minute, and what Twilio said about each.

Twilio reports an outbound call's progress (``initiated``, ``ringing``, ``answered``,
``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled``) and, asynchronously, who answered
(``AnsweredBy``: ``human``, ``machine_end_beep``…). Progress before the call's stream starts is
kept here until its record exists; who answered goes to the call's session, which is silent
until it knows (or here, if the session has not started yet). Per process, bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

KEEP = 1000  # placed calls remembered (the oldest are forgotten first)
WINDOW_S = 60.0


@dataclass
class PlacedCall:
    call_sid: str
    to: str
    from_: str
    placed_at: float = field(default_factory=time.time)
    statuses: list[tuple[float, str]] = field(default_factory=list)  # (epoch time, status), before the stream
    answered_by: str = ""
    listener: Callable[[str], None] | None = None  # the session's, once its stream started


class OutboundCalls:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._recent: deque[float] = deque()
        self._placed: OrderedDict[str, PlacedCall] = OrderedDict()

    def admit(self) -> float:
        """0 if one more call may be placed now (it is counted), else seconds until one may."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= WINDOW_S:
            self._recent.popleft()
        if len(self._recent) >= self._per_minute:
            return WINDOW_S - (now - self._recent[0])
        self._recent.append(now)
        return 0.0

    def placed(self, call: PlacedCall) -> None:
        self._placed[call.call_sid] = call
        while len(self._placed) > KEEP:
            self._placed.popitem(last=False)

    def get(self, call_sid: str) -> PlacedCall | None:
        return self._placed.get(call_sid)

    def answered_by(self, call_sid: str, answer: str) -> bool:
        """Who answered a call this server placed; False if it is not one of them."""
        call = self._placed.get(call_sid)
        if call is None:
            return False
        call.answered_by = answer
        if call.listener is not None:
            call.listener(answer)
        return True

    def listen(self, call_sid: str, listener: Callable[[str], None]) -> PlacedCall | None:
        """The call's session hears who answered (at once, if Twilio already said)."""
        call = self._placed.get(call_sid)
        if call is None:
            return None
        call.listener = listener
        if call.answered_by:
            listener(call.answered_by)
        return call

    def ended(self, call_sid: str) -> None:
        call = self._placed.get(call_sid)
        if call is not None:
            call.listener = None
