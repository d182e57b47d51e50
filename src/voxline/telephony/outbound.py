"""Calls the agent places: created over Twilio's REST API, followed through Twilio's callbacks.

The call's TwiML comes from this server's own ``/voice-stream`` (so it streams to the agent like
any call, with its per-call stream credential), Twilio reports its progress to
``/voice/call-status`` and who answered to ``/voice/amd`` (asynchronous answering-machine
detection, to the end of a machine's greeting). Both are signature-checked. A call that never
connects (busy, no answer, failed, canceled) is recorded with that outcome; one that connects is
recorded by its stream, with the progress seen before it.
"""

from __future__ import annotations

import logging
import re
import time

from fastapi import APIRouter, Request, Response

from voxline.access.outbound import PlacedCall
from voxline.logs import Private
from voxline.services import Services, ServicesDep
from voxline.session.records import CallRecord
from voxline.telephony.admission import verified_form
from voxline.telephony.messages import shown

log = logging.getLogger(__name__)
router = APIRouter()

E164 = re.compile(r"\+[1-9]\d{6,14}")
STATUSES = frozenset({"queued", "initiated", "ringing", "answered", "in-progress", "completed"})
NOT_CONNECTED = frozenset({"busy", "no-answer", "failed", "canceled"})
ANSWERS = frozenset(
    {"human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"}
)
STATUS_PATH, AMD_PATH = "/voice/call-status", "/voice/amd"


class OutboundUnavailable(Exception):
    """Calls cannot be placed: no REST API, no number to call from, or too many this minute."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


async def place_call(services: Services, to: str, from_: str, base: str) -> PlacedCall:
    """Create the call over REST (``base``: this server's public URL, which Twilio calls back).
    Raises ``OutboundUnavailable``, ``rest.CallRefused`` (Twilio said no) or
    ``CallControlUnavailable`` (Twilio could not be reached)."""
    from_ = from_ or services.settings.outbound_from
    for name, number in (("to", to), ("from", from_)):
        if not E164.fullmatch(number):
            raise ValueError(f"'{name}' must be a number in E.164 form (+ and 7 to 15 digits), not {shown(number, 20)}")
    if services.rest is None:
        raise OutboundUnavailable("placing calls needs Twilio's REST API: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    if (wait := services.outbound.admit()) > 0:
        raise OutboundUnavailable(
            f"at most {services.settings.outbound_per_minute} calls a minute (VOXLINE_OUTBOUND_PER_MINUTE)", wait
        )
    settings = services.agent.outbound
    call_sid = await services.rest.create_call(
        to,
        from_,
        url=f"{base}/voice-stream",
        status_url=f"{base}{STATUS_PATH}",
        amd_url=f"{base}{AMD_PATH}",
        ring_timeout_s=settings.ring_timeout_s,
        detection_timeout_s=settings.detection_timeout_s,
    )
    call = PlacedCall(call_sid=call_sid, to=to, from_=from_)
    services.outbound.placed(call)
    log.info("placed call %s to %s", shown(call_sid), Private(to))
    return call


@router.post(STATUS_PATH)
async def call_status(request: Request, services: ServicesDep) -> Response:
    params = await verified_form(services, request)
    if isinstance(params, Response):
        return params
    call_sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
    if status not in STATUSES | NOT_CONNECTED:
        log.warning("call %s: unknown call status %s ignored", shown(call_sid), shown(status, 20))
        return Response(status_code=204)
    log.info("call %s: %s", shown(call_sid), status)
    details = {"status": status, "seconds": params.get("CallDuration", "")[:10]}
    record = services.registry.find(call_sid)
    placed = services.outbound.get(call_sid)
    if record is not None:
        record.event("call-status", **details)
    elif placed is not None and status in NOT_CONNECTED:
        _record_unconnected(services, placed, status)
    elif placed is not None:
        placed.statuses.append((time.time(), status))  # until its stream starts and makes its record
    return Response(status_code=204)


def _record_unconnected(services: Services, placed: PlacedCall, status: str) -> None:
    record = CallRecord(
        call_sid=placed.call_sid,
        stream_sid="",
        agent=services.agent.name,
        caller=placed.from_,
        called=placed.to,
        started_at=placed.placed_at,
        outcome=status,
    )
    services.registry.begin(record)
    record.event("placed", to=placed.to)
    for _, earlier in placed.statuses:
        record.event("call-status", status=earlier)
    record.event("call-status", status=status)
    services.registry.end(record)


@router.post(AMD_PATH)
async def answered_by(request: Request, services: ServicesDep) -> Response:
    params = await verified_form(services, request)
    if isinstance(params, Response):
        return params
    call_sid, answer = params.get("CallSid", ""), params.get("AnsweredBy", "")
    if answer not in ANSWERS:
        log.warning("call %s: unknown AnsweredBy %s ignored", shown(call_sid), shown(answer, 30))
        return Response(status_code=204)
    log.info("call %s answered by %s", shown(call_sid), answer)
    if (record := services.registry.find(call_sid)) is not None:
        record.event("answered-by", answer=answer, ms=params.get("MachineDetectionDuration", "")[:10])
    if not services.outbound.answered_by(call_sid, answer):
        log.warning("call %s: answered by %s, but this server did not place it", shown(call_sid), answer)
    return Response(status_code=204)
