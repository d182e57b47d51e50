"""Twilio's REST API on a live call, through the ``twilio`` SDK's asynchronous client.

Ending a call by closing its Media Stream only ends ``<Connect>``; over REST the call itself is
ended (``Status=completed``) or redirected to new TwiML (a transfer's ``<Dial>``), whichever
path it is on. ``TWILIO_API_BASE_URL`` points the client elsewhere (the tests' local fake speaks
Twilio's wire format: form-encoded POSTs with Basic auth, JSON answers, error 20404 for a call
that no longer exists).
"""

from __future__ import annotations

import logging

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from voxline.session.control import CallControl, CallControlUnavailable

log = logging.getLogger(__name__)

CALL_NOT_FOUND = 20404  # Twilio's code for a call that has ended (or never was)


class CallRefused(Exception):
    """Twilio would not place the call (a number it cannot call, a From that is not yours…)."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Twilio {status} (code {code}): {message}")
        self.status, self.code, self.message = status, code, message


class TwilioRest:
    """One pooled client per process; made on the event loop that uses it."""

    def __init__(self, account_sid: str, auth_token: str, base_url: str, timeout_s: float = 10.0) -> None:
        self._http = AsyncTwilioHttpClient(timeout=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = base_url.rstrip("/")

    async def hang_up(self, call_sid: str) -> bool:
        """End the call; False if it had already ended (Twilio's 20404 is not an error)."""
        return await self._update(call_sid, status="completed")

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Replace what the call is doing with ``twiml``; False if it had already ended."""
        return await self._update(call_sid, twiml=twiml)

    async def create_call(
        self,
        to: str,
        from_: str,
        url: str,
        status_url: str,
        amd_url: str,
        ring_timeout_s: int = 30,
        detection_timeout_s: int = 8,
    ) -> str:
        """Place a call whose TwiML comes from ``url``, with progress reported to ``status_url`` and
        asynchronous answering-machine detection (to the end of a machine's greeting, so a message
        left then follows the beep) to ``amd_url``. Returns its CallSid."""
        try:
            call = await self._client.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                method="POST",
                status_callback=status_url,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                status_callback_method="POST",
                timeout=ring_timeout_s,
                machine_detection="DetectMessageEnd",
                machine_detection_timeout=detection_timeout_s,
                async_amd="true",
                async_amd_status_callback=amd_url,
                async_amd_status_callback_method="POST",
            )
        except TwilioRestException as exc:
            raise CallRefused(exc.status, exc.code, str(exc.msg)) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise CallControlUnavailable(f"Twilio REST unreachable: {exc}") from exc
        return str(call.sid)

    async def _update(self, call_sid: str, **fields: str) -> bool:
        try:
            await self._client.calls(call_sid).update_async(**fields)
        except TwilioRestException as exc:
            if exc.code == CALL_NOT_FOUND:
                log.info("call %s had already ended (Twilio %d)", call_sid, CALL_NOT_FOUND)
                return False
            raise CallControlUnavailable(f"Twilio REST {exc.status} (code {exc.code}): {exc.msg}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise CallControlUnavailable(f"Twilio REST unreachable: {exc}") from exc
        return True

    async def close(self) -> None:
        if self._http.session is not None:
            await self._http.close()


def dial_verb(to: str, caller_id: str = "", timeout_s: int = 20, action: str = "", whisper_url: str = "") -> Dial:
    """``<Dial>`` the person; when the dialled leg ends (answered and done, busy, no answer),
    Twilio posts ``DialCallStatus`` to ``action``, whose TwiML the caller hears next. With
    ``whisper_url``, the person hears that URL's TwiML when they answer, before the caller is put
    through (a warm hand-off)."""
    dial = Dial(
        caller_id=caller_id or None, timeout=timeout_s, action=action or None, method="POST" if action else None
    )
    whisper = {"url": whisper_url, "method": "POST"} if whisper_url else {}
    if to.startswith("sip:"):
        dial.sip(to, **whisper)
    else:
        dial.number(to, **whisper)
    return dial


def dial_twiml(to: str, caller_id: str = "", timeout_s: int = 20, action: str = "", whisper_url: str = "") -> str:
    response = VoiceResponse()
    response.append(dial_verb(to, caller_id, timeout_s, action, whisper_url))
    return str(response)


class RestCallControl:
    """``CallControl`` over Twilio's REST API for one call."""

    def __init__(
        self,
        rest: TwilioRest,
        call_sid: str,
        caller_id: str = "",
        fallback: CallControl | None = None,
        dial_timeout_s: int = 20,
        status_url: str = "",
        whisper_url: str = "",
    ) -> None:
        self._rest = rest
        self._call_sid = call_sid
        self._caller_id = caller_id
        self._fallback = fallback
        self._dial_timeout_s = dial_timeout_s
        self._status_url = status_url  # where Twilio reports how the transfer went
        self._whisper_url = whisper_url  # what the person hears first ('' : a cold transfer)

    async def hang_up(self) -> None:
        """``Status=completed``; if the API cannot be reached, the fallback (closing the stream)."""
        try:
            await self._rest.hang_up(self._call_sid)
        except CallControlUnavailable as exc:
            if self._fallback is None:
                raise
            log.error("call %s: hanging up over REST failed (%s); closing its stream instead", self._call_sid, exc)
            await self._fallback.hang_up()

    async def transfer(self, to: str) -> None:
        twiml = dial_twiml(to, self._caller_id, self._dial_timeout_s, self._status_url, self._whisper_url)
        if not await self._rest.redirect(self._call_sid, twiml):
            raise CallControlUnavailable("the call has already ended")

    async def send_digits(self, digits: str) -> None:
        raise CallControlUnavailable("sending digits on a live stream is not supported yet")
