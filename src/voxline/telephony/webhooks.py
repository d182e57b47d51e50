"""Twilio's voice webhook for streaming calls: answers with ``<Connect><Stream>`` TwiML."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from voxline.access.credentials import PARAMETER
from voxline.logs import Private
from voxline.services import Services, ServicesDep
from voxline.telephony.admission import accepted_webhook, base_url, busy
from voxline.telephony.messages import shown
from voxline.telephony.record_webhooks import start_recorded_call
from voxline.telephony.security import websocket_url

log = logging.getLogger(__name__)
router = APIRouter()

# Call data handed to the stream as <Parameter>s (Twilio forbids a query string on the URL).
STREAM_PARAMETERS = ("CallSid", "AccountSid", "From", "To", "Direction")
MAX_PARAMETER_VALUE = 64  # Twilio: a name and its value together under 500 characters; these are short


def stream_twiml(stream_url: str, params: dict[str, str], credential: str) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    for name in STREAM_PARAMETERS:
        if params.get(name):
            stream.parameter(name=name, value=params[name][:MAX_PARAMETER_VALUE])
    stream.parameter(name=PARAMETER, value=credential)
    connect.append(stream)
    response.append(connect)
    return str(response)


async def over_capacity(services: Services, request: Request, params: dict[str, str]) -> Response:
    """Full (or shutting down): the recording path if configured, else a spoken 'busy' and <Hangup/>."""
    log.warning(
        "call %s turned away: %s (%d streaming calls, limit %d)",
        params.get("CallSid", "?"),
        "shutting down" if services.draining else "at capacity",
        services.slots.in_use(),
        services.settings.max_calls,
    )
    if services.settings.overflow_to_recording and not services.draining:
        return await start_recorded_call(services, request, params)
    return await busy(services, request)


@router.post("/voice-stream")
async def voice_stream(request: Request, services: ServicesDep) -> Response:
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    if services.draining or not services.slots.reserve(params.get("CallSid", "")):
        return await over_capacity(services, request, params)
    assert services.stack is not None  # accepted_webhook answers 503 while the models load
    base = base_url(services, request)
    if services.stack.streams is not None:  # a live STT: connect its socket now, so the first turn pays no handshake
        agent = services.agent
        first = agent.languages.get(agent.language)
        services.stack.streams.park(params.get("CallSid", ""), first.stt_language if first else agent.language)
    log.info("incoming call %s from %s", shown(params.get("CallSid", "?")), Private(params.get("From", "?")))
    credential = services.credentials.issue(params.get("CallSid", ""))
    twiml = stream_twiml(websocket_url(base, "/media-stream"), params, credential)
    return Response(twiml, media_type="application/xml")
