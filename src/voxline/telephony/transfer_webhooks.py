"""After a transfer: how the person's leg ended, and the caller's message when nobody answered.

The agent hands a call over by redirecting it to ``<Dial action="/voice/transfer-status">``; the
media stream ends there. When the dialled leg ends, Twilio posts ``DialCallStatus``: after a
conversation (``completed`` / ``answered``) the call ends; when nobody took it (``busy``,
``no-answer``, ``failed``, ``canceled``) the caller hears the agent file's ``no_answer`` phrase and
leaves a message (``<Record>``), which is fetched, transcribed and kept with the call. With a
``whisper`` phrase, the person who answers first hears it (``/voice/whisper``: the caller's last
words), then the caller is put through.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import VoiceResponse

from voxline.errors import ProviderError
from voxline.services import Services, ServicesDep
from voxline.session.responder import Responder
from voxline.telephony.admission import accepted_webhook, base_url, phrase_url
from voxline.telephony.messages import shown
from voxline.telephony.recordings import RecordingUnavailable

log = logging.getLogger(__name__)
router = APIRouter()

ANSWERED = frozenset({"completed", "answered"})
WHISPER_PATH = "/voice/whisper"
SAID_WORDS = 40  # of the caller's last words, in the whisper


def whisper_url(base: str, call_sid: str) -> str:
    """Where the person's leg fetches its whisper: the caller's call in the query (the signature
    Twilio sends covers it)."""
    return f"{base}{WHISPER_PATH}?{urlencode({'call': call_sid})}"


@router.post(WHISPER_PATH)
async def whisper(request: Request, services: ServicesDep) -> Response:
    """The person answered: what they hear before the caller is put through."""
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    call_sid = request.query_params.get("call", "")
    record = services.registry.find(call_sid)
    said = " ".join(t.caller_text for t in (record.turns if record is not None else []) if t.caller_text)
    said = " ".join(said.split()[-SAID_WORDS:]) or "nothing yet"
    log.info("call %s: whispering to the person who answered", shown(call_sid))
    assert services.stack is not None  # accepted_webhook answers 503 while the models load
    audio = await services.stack.speak(services.agent.transfer.whisper.format(said=said))
    token = services.audio.put(audio, call_sid=call_sid)  # the caller's words: forgotten with the caller
    response = VoiceResponse()
    response.play(f"{base_url(services, request)}/audio/{token}.wav")
    return Response(str(response), media_type="application/xml")


@router.post("/voice/transfer-status")
async def transfer_status(request: Request, services: ServicesDep) -> Response:
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    call_sid, status = params.get("CallSid", ""), params.get("DialCallStatus", "")
    record = services.registry.find(call_sid)
    if record is not None:
        record.event("transfer", outcome=status[:20], seconds=params.get("DialCallDuration", "")[:10])
    log.info("call %s: transfer %s", shown(call_sid), shown(status, 20))
    response = VoiceResponse()
    if status in ANSWERED:
        response.hangup()
        return Response(str(response), media_type="application/xml")
    transfer = services.agent.transfer
    response.play(await phrase_url(services, request, transfer.no_answer))
    response.record(
        action=f"{base_url(services, request)}/voice/message",
        method="POST",
        max_length=transfer.message_max_s,
        play_beep=True,
        trim="trim-silence",
    )
    return Response(str(response), media_type="application/xml")


@router.post("/voice/message")
async def message(request: Request, services: ServicesDep) -> Response:
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    call_sid, url = params.get("CallSid", ""), params.get("RecordingUrl", "")

    async def keep() -> bytes:
        text = await _transcribe(services, url) if url and params.get("Digits") != "hangup" else ""
        record = services.registry.find(call_sid)
        if record is not None:
            record.event(
                "message", recording_url=url[:300], seconds=params.get("RecordingDuration", "")[:10], text=text
            )
        log.info("call %s: the caller left a message (%s s)", shown(call_sid), shown(params.get("RecordingDuration")))
        response = VoiceResponse()
        response.play(await phrase_url(services, request, services.agent.transfer.thanks))
        response.hangup()
        return str(response).encode()

    body, _ = await services.answered.answer(params.get("RecordingSid") or url or call_sid, keep)
    return Response(body, media_type="application/xml")


async def _transcribe(services: Services, url: str) -> str:
    """The message's words, or '' if the recording cannot be fetched or transcribed (the URL is kept)."""
    assert services.stack is not None  # accepted_webhook answers 503 while the models load
    try:
        pcm = await services.fetcher.fetch(url)
        return await Responder(services.agent, services.stack).transcribe(pcm, services.agent.language)
    except (RecordingUnavailable, ProviderError) as exc:
        log.warning("the caller's message could not be transcribed: %s", exc)
        return ""
