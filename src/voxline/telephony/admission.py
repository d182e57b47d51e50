"""What every Twilio webhook shares: the signature check, the public base URL, fixed phrases as
served audio, and the spoken 'busy' that turns a call away."""

from __future__ import annotations

import logging

from fastapi import Request, Response
from twilio.twiml.voice_response import VoiceResponse

from voxline.services import Services
from voxline.telephony.security import public_base_url

log = logging.getLogger(__name__)

FIXED_PHRASE_TTL_S = 24 * 3600


def base_url(services: Services, request: Request) -> str:
    return public_base_url(services.settings.public_url, request.headers, request.url.scheme)


async def verified_form(services: Services, request: Request) -> dict[str, str] | None:
    """The webhook's form parameters, or None when the signature does not match."""
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    url = base_url(services, request) + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not services.signatures.webhook_ok(url, params, request.headers.get("x-twilio-signature")):
        log.warning("webhook refused: invalid X-Twilio-Signature for %s (client %s)", url, request.client)
        return None
    return params


async def accepted_webhook(services: Services, request: Request) -> dict[str, str] | Response:
    """A signed webhook's form parameters, or the answer to give instead (403 unsigned, 503 loading)."""
    params = await verified_form(services, request)
    if params is None:
        return Response("invalid signature", status_code=403, media_type="text/plain")
    if services.stack is None:
        return Response("models are loading", status_code=503, media_type="text/plain")
    return params


async def phrase_url(services: Services, request: Request, text: str) -> str:
    """A URL for a fixed phrase, synthesized once and stored for a day."""
    assert services.stack is not None, "webhooks are answered once the models are ready"
    token = services.phrase_tokens.get(text)
    if token is None or not services.audio.alive(token):
        token = services.audio.put(await services.stack.speak(text), ttl_s=FIXED_PHRASE_TTL_S)
        services.phrase_tokens[text] = token
    return f"{base_url(services, request)}/audio/{token}.wav"


async def busy(services: Services, request: Request) -> Response:
    """The agent's 'busy' phrase, then <Hangup/>."""
    response = VoiceResponse()
    response.play(await phrase_url(services, request, services.agent.busy))
    response.hangup()
    return Response(str(response), media_type="application/xml")
