"""Twilio's voice webhook for streaming calls: answers with ``<Connect><Stream>`` TwiML."""

from __future__ import annotations

import logging

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


@router.post("/voice-stream")
async def voice_stream(request: Request) -> Response:
    services = request.app.state.services
    params = await verified_form(request)
    if params is None:
        return Response("invalid signature", status_code=403, media_type="text/plain")
    if services.stack is None:
        return Response("models are loading", status_code=503, media_type="text/plain")
    base = public_base_url(services.settings.public_url, request.headers, request.url.scheme)
    log.info("incoming call %s from %s", params.get("CallSid", "?"), params.get("From", "?"))
    return Response(stream_twiml(websocket_url(base, "/media-stream"), params), media_type="application/xml")
