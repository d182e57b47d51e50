"""A local server speaking Twilio's REST API for live calls, for tests and the simulator.

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with HTTP Basic auth (account SID
and auth token) and a form body: ``Status=completed`` ends the call, ``Twiml=…`` or ``Url=…``
redirects it. The answer is the call resource as JSON; a call that is not in progress gets
Twilio's 404 with error code 20404, a wrong password 401 with 20003. ``on_end`` and
``on_redirect`` let a test do what Twilio then does to the call's media stream.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voxline.simulator.loopback import LoopbackServer


@dataclass
class RestRequest:
    call_sid: str
    params: dict[str, str]


class FakeTwilioRest(LoopbackServer):
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.calls: dict[str, str] = {}  # CallSid -> status
        self.requests: list[RestRequest] = []
        self.on_end: Callable[[str], None] | None = None
        self.on_redirect: Callable[[str, str], None] | None = None
        app = Starlette(routes=[Route("/2010-04-01/Accounts/{account}/Calls/{name}", self._update, methods=["POST"])])
        super().__init__(app)

    def add_call(self, call_sid: str) -> None:
        """A call in progress (Twilio knows every call it placed or answered)."""
        self.calls[call_sid] = "in-progress"

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


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status_code=status,
    )
