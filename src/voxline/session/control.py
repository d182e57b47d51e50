"""The call-control port: what the session may ask of the telephone call itself.

The session never talks to Twilio directly: it asks this port to hang up, hand the caller to a
person, or send keypad tones. Each path supplies its own implementation: a Media Stream ends the
call by closing its socket (Twilio then runs the TwiML after ``<Connect>``: none, so the call
ends); transferring and sending digits need Twilio's REST API on a live call.
"""

from __future__ import annotations

from typing import Protocol


class CallControlUnavailable(RuntimeError):
    """This call's control cannot do that (for example, no REST API is configured)."""


class CallControl(Protocol):
    async def hang_up(self) -> None:
        """End the call now (the session has made sure its goodbye was heard)."""
        ...

    async def transfer(self, to: str) -> None:
        """Hand the caller to ``to`` (an E.164 number or a SIP address)."""
        ...

    async def send_digits(self, digits: str) -> None:
        """Play keypad tones into the call (``0``–``9``, ``*``, ``#``, ``w`` for a pause)."""
        ...


class NoCallControl:
    """For a call that cannot be controlled from here (a test's, a benchmark's)."""

    async def hang_up(self) -> None:
        raise CallControlUnavailable("this call cannot be hung up from the server")

    async def transfer(self, to: str) -> None:
        raise CallControlUnavailable("this call cannot be transferred")

    async def send_digits(self, digits: str) -> None:
        raise CallControlUnavailable("this call cannot send digits")
