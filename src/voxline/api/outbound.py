"""``POST /api/calls``: the agent calls someone (``voxline dial`` uses it).

201 with the CallSid once Twilio has taken the call; 422 for a number that is not E.164, 429 past
``VOXLINE_OUTBOUND_PER_MINUTE`` (with ``Retry-After``), 503 without Twilio's REST API or a number
to call from, 502 when Twilio refuses the call or cannot be reached.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, HTTPException, Request

from voxline.api.calls import require_token
from voxline.api.models import PlaceCall, PlacedCallOut
from voxline.services import ServicesDep
from voxline.session.control import CallControlUnavailable
from voxline.telephony.admission import base_url
from voxline.telephony.outbound import OutboundUnavailable, place_call
from voxline.telephony.rest import CallRefused

router = APIRouter(prefix="/api", tags=["calls"])


@router.post(
    "/calls",
    dependencies=[Depends(require_token)],
    response_model=PlacedCallOut,
    response_model_by_alias=True,
    status_code=201,
)
async def create_call(body: PlaceCall, request: Request, services: ServicesDep) -> PlacedCallOut:
    """Place a call: a person who answers talks to the agent; an answering machine gets the agent
    file's voicemail message after its beep."""
    try:
        placed = await place_call(services, body.to, body.from_, base_url(services, request))
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except OutboundUnavailable as exc:
        if exc.retry_after_s:
            raise HTTPException(
                status_code=429, detail=str(exc), headers={"Retry-After": str(math.ceil(exc.retry_after_s))}
            ) from exc
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except CallRefused as exc:
        raise HTTPException(
            status_code=502, detail=f"Twilio refused the call: {exc.message} (code {exc.code})"
        ) from exc
    except CallControlUnavailable as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    return PlacedCallOut.model_validate(
        {"call_sid": placed.call_sid, "to": placed.to, "from": placed.from_, "status": "queued"}
    )
