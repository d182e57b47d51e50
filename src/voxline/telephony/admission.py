"""What every Twilio webhook shares: the signature check, the public base URL, fixed phrases as
served audio, and the spoken 'busy' that turns a call away."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import Request, Response
from twilio.twiml.voice_response import VoiceResponse

from voxline.services import Services
from voxline.telephony.messages import shown
from voxline.telephony.security import public_base_url

log = logging.getLogger(__name__)

FIXED_PHRASE_TTL_S = 24 * 3600
FORM = "application/x-www-form-urlencoded"


def base_url(services: Services, request: Request) -> str:
    peer = request.client.host if request.client else None
    return public_base_url(services.settings.public_url, request.headers, request.url.scheme, peer, services.proxies)


def _refused(status: int, why: str, request: Request) -> Response:
    log.warning("webhook refused (%d): %s (client %s)", status, why, request.client)
    return Response(why, status_code=status, media_type="text/plain")


async def webhook_form(services: Services, request: Request) -> dict[str, str] | Response:
    """The webhook's form parameters, read only if the body is a form of Twilio's size: the
    signature covers the parameters, so the body is read before it can be checked, but never more
    than ``webhook_max_bytes`` of it (413), and nothing that is not a form (415)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return _refused(415, f"a webhook body must be {FORM}, not {shown(content_type, 40)}", request)
    limit = services.settings.webhook_max_bytes
    length = request.headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > limit):
        return _refused(413, f"a webhook body is at most {limit} bytes", request)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _refused(413, f"a webhook body is at most {limit} bytes", request)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


async def verified_form(services: Services, request: Request) -> dict[str, str] | Response:
    """The webhook's form parameters, or the answer to give instead (403 when the signature does
    not match, 413 / 415 for a body that is not a webhook's)."""
    params = await webhook_form(services, request)
    if isinstance(params, Response):
        return params
    url = base_url(services, request) + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not services.signatures.webhook_ok(url, params, request.headers.get("x-twilio-signature")):
        return _refused(403, "invalid signature", request)
    return params


async def accepted_webhook(services: Services, request: Request) -> dict[str, str] | Response:
    """A signed webhook's form parameters, or the answer to give instead (403 unsigned, 413 / 415
    not a webhook's body, 503 loading)."""
    params = await verified_form(services, request)
    if isinstance(params, Response):
        return params
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
