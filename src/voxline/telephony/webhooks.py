"""Twilio's voice webhook for streaming calls: answers with ``<Connect><Stream>`` TwiML."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from voxline.telephony.security import public_base_url, websocket_url

log = logging.getLogger(__name__)
router = APIRouter()

# Call data handed to the stream as <Parameter>s (Twilio forbids a query string on the URL).
STREAM_PARAMETERS = ("CallSid", "AccountSid", "From", "To", "Direction")


async def verified_form(request: Request) -> dict[str, str] | None:
    """The webhook's form parameters, or None when the signature does not match."""
    services = request.app.state.services
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    base = public_base_url(services.settings.public_url, request.headers, request.url.scheme)
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not services.signatures.webhook_ok(url, params, request.headers.get("x-twilio-signature")):
        log.warning("webhook refused: invalid X-Twilio-Signature for %s (client %s)", url, request.client)
        return None
    return params


async def accepted_webhook(request: Request) -> dict[str, str] | Response:
    """A signed webhook's form parameters, or the answer to give instead (403 unsigned, 503 loading)."""
    params = await verified_form(request)
    if params is None:
        return Response("invalid signature", status_code=403, media_type="text/plain")
    if request.app.state.services.stack is None:
        return Response("models are loading", status_code=503, media_type="text/plain")
    return params


def stream_twiml(stream_url: str, params: dict[str, str]) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    for name in STREAM_PARAMETERS:
        if params.get(name):
            stream.parameter(name=name, value=params[name])
    connect.append(stream)
    response.append(connect)
    return str(response)


async def over_capacity(request: Request, params: dict[str, str]) -> Response:
    """Full (or shutting down): the recording path if configured, else a spoken 'busy' and <Hangup/>."""
    from voxline.telephony.record_webhooks import phrase_url, start_recorded_call

    services = request.app.state.services
    log.warning("call %s turned away: %s (%d streaming calls, limit %d)", params.get("CallSid", "?"),
                "shutting down" if services.draining else "at capacity", services.streaming_calls(),
                services.settings.max_calls)
    if services.settings.overflow_to_recording and not services.draining:
        return await start_recorded_call(request, params)
    response = VoiceResponse()
    response.play(await phrase_url(request, services.agent.busy))
    response.hangup()
    return Response(str(response), media_type="application/xml")


@router.post("/voice-stream")
async def voice_stream(request: Request) -> Response:
    services = request.app.state.services
    params = await accepted_webhook(request)
    if isinstance(params, Response):
        return params
    if services.draining or services.streaming_calls() >= services.settings.max_calls:
        return await over_capacity(request, params)
    base = public_base_url(services.settings.public_url, request.headers, request.url.scheme)
    services.admitted[params.get("CallSid", "")] = time.monotonic()
    if services.stack.streams is not None:  # a live STT: connect its socket now, so the first turn pays no handshake
        agent = services.agent
        first = agent.languages.get(agent.language)
        services.stack.streams.park(params.get("CallSid", ""), first.stt_language if first else agent.language)
    log.info("incoming call %s from %s", params.get("CallSid", "?"), params.get("From", "?"))
    return Response(stream_twiml(websocket_url(base, "/media-stream"), params), media_type="application/xml")
