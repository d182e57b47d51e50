"""The line: where the agent's audio goes, in the three things a phone line can be told.

The pacer speaks only this protocol, so it knows nothing of Twilio's JSON: the Media Streams
serializer (``voxline.telephony.line.TwilioLine``) is one implementation, a test's recording
line another.
"""

from __future__ import annotations

from typing import Protocol


class Line(Protocol):
    async def audio(self, ulaw: bytes) -> None:
        """Whole 20 ms frames of 8 kHz μ-law, to be played after what was sent before."""
        ...

    async def mark(self, name: str) -> None:
        """Ask the far end to report ``name`` back once everything sent before it has played."""
        ...

    async def clear(self) -> None:
        """Drop everything sent and not played yet (the far end reports its pending marks)."""
        ...
