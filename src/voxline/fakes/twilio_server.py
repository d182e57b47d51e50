"""A local server speaking Twilio's REST API for live calls, for tests and the simulator.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` places a call (201, the call ``queued``;
``on_create`` gets its parameters, so a test can then do what Twilio does: post the status
callbacks, fetch ``Url``, open the stream). ``POST …/Calls/{CallSid}.json`` with HTTP Basic auth
(account SID and auth token) and a form body: ``Status=completed`` ends the call, ``Twiml=…`` or
``Url=…`` redirects it. The answer is the call resource as JSON; a call that is not in progress gets
Twilio's 404 with error code 20404, a wrong password 401 with 20003. ``on_end`` and
``on_redirect`` let a test do what Twilio then does to the call's media stream.
"""

from __future__ import annotations

import base64
import email.utils
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from voxline.simulator.loopback import LoopbackServer
from voxline.telephony.outbound import E164


@dataclass
class RestRequest:
    call_sid: str
    params: dict[str, str]


class FakeTwilioRest(LoopbackServer):
    def __init__(self, account_sid: str, auth_token: str, numbers: set[str] | None = None) -> None:
        """``numbers``: the account's own numbers, the only ones a call may come from (any, if None)."""
        self.account_sid = account_sid
        self.numbers = numbers
        self._validator = RequestValidator(auth_token)
        self.created: dict[str, dict[str, list[str]]] = {}  # CallSid -> the parameters it was placed with
        self._sequence = 0
        self._expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.calls: dict[str, str] = {}  # CallSid -> status
        self.requests: list[RestRequest] = []
        self.on_end: Callable[[str], None] | None = None
        self.on_redirect: Callable[[str, str], None] | None = None
        self.on_create: Callable[[str, dict[str, list[str]]], None] | None = None  # CallSid, parameters
        app = Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Calls/{name}", self._update, methods=["POST"]),
            ]
        )
        super().__init__(app)

    def add_call(self, call_sid: str) -> None:
        """A call in progress (Twilio knows every call it placed or answered)."""
        self.calls[call_sid] = "in-progress"

    async def _create(self, request: Request) -> JSONResponse:
        if not secrets.compare_digest(request.headers.get("authorization", ""), self._expected):
            return _error(401, 20003, "Authenticate")
        form = await request.form()
        params: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            params.setdefault(key, []).append(str(value))
        to, from_ = params.get("To", [""])[0], params.get("From", [""])[0]
        if not to:
            return _error(400, 21201, "No 'To' number is specified")
        if not E164.fullmatch(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        if self.numbers is not None and from_ not in self.numbers:
            return _error(
                400, 21210, f"The source phone number provided, {from_}, is not yet verified for your account."
            )
        if "Url" not in params and "Twiml" not in params:
            return _error(400, 21205, "Url parameter is required.")
        call_sid = "CA" + secrets.token_hex(16)
        self.calls[call_sid] = "queued"
        self.created[call_sid] = params
        self.requests.append(RestRequest(call_sid, {k: v[0] for k, v in params.items()}))
        if self.on_create is not None:
            self.on_create(call_sid, params)
        return JSONResponse(
            {
                "sid": call_sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": from_,
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json",
            },
            status_code=201,
        )

    async def _update(self, request: Request) -> JSONResponse:
        if not secrets.compare_digest(request.headers.get("authorization", ""), self._expected):
            return _error(401, 20003, "Authenticate")
        call_sid = request.path_params["name"].removesuffix(".json")
        params = {k: str(v) for k, v in (await request.form()).multi_items()}
        self.requests.append(RestRequest(call_sid, params))
        if self.calls.get(call_sid) != "in-progress":
            return _error(404, 20404, f"The requested resource /Calls/{call_sid}.json was not found")
        if params.get("Status") == "completed":
            self.calls[call_sid] = "completed"
            if self.on_end is not None:
                self.on_end(call_sid)
        elif "Twiml" in params or "Url" in params:
            if self.on_redirect is not None:
                self.on_redirect(call_sid, params.get("Twiml") or params.get("Url", ""))
        return JSONResponse(
            {
                "sid": call_sid,
                "account_sid": self.account_sid,
                "status": self.calls[call_sid],
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json",
            }
        )

    async def report_status(self, call_sid: str, status: str, duration_s: int | None = None) -> int:
        """What Twilio posts to a placed call's ``StatusCallback`` (signed); the answer's status."""
        placed = self.created[call_sid]
        self.calls[call_sid] = status
        self._sequence += 1
        params = self._call_params(call_sid) | {
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self._sequence),
            "Timestamp": email.utils.formatdate(usegmt=True),
        }
        if duration_s is not None:
            params["CallDuration"] = str(duration_s)
        return await self._post(placed["StatusCallback"][0], params)

    async def report_answered_by(self, call_sid: str, answered_by: str, detection_ms: int = 3200) -> int:
        """What Twilio posts to ``AsyncAmdStatusCallback`` (signed); the answer's status."""
        params = {
            "AccountSid": self.account_sid,
            "CallSid": call_sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": str(detection_ms),
        }
        return await self._post(self.created[call_sid]["AsyncAmdStatusCallback"][0], params)

    def _call_params(self, call_sid: str) -> dict[str, str]:
        placed = self.created[call_sid]
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "Direction": "outbound-api",
            "From": placed["From"][0],
            "To": placed["To"][0],
        }

    async def _post(self, url: str, params: dict[str, str]) -> int:
        signature = self._validator.compute_signature(url, params)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
        return response.status_code


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status_code=status,
    )
