"""The recording path: ``POST /voice`` and its ``<Record>`` action, one webhook per turn.

The fallback to streaming and the baseline it is measured against. Twilio records the caller
until ``timeout`` seconds of silence, posts the recording's URL; Voxline fetches it, transcribes,
asks the LLM, synthesizes the whole reply and answers ``<Play>`` of a URL it serves, followed by
the next ``<Record>``. The conversation lives in the call store, so any worker can take any turn.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import VoiceResponse

from voxline.audio.pcm import rms_dbfs
from voxline.llm.base import ChatMessage
from voxline.llm.chunking import speakable
from voxline.errors import ProviderError
from voxline.session.prompt import build_prompt
from voxline.session.records import CallRecord
from voxline.session.timeline import TurnRecord
from voxline.telephony.recordings import RecordingUnavailable
from voxline.telephony.security import public_base_url
from voxline.telephony.webhooks import accepted_webhook

log = logging.getLogger(__name__)
router = APIRouter()

SILENT_DBFS = -50.0
MIN_SPEECH_S = 0.2
FIXED_PHRASE_TTL_S = 24 * 3600


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _base(request: Request) -> str:
    return public_base_url(request.app.state.services.settings.public_url, request.headers, request.url.scheme)


async def phrase_url(request: Request, text: str) -> str:
    """A URL for a fixed phrase, synthesized once and stored for a day."""
    services = request.app.state.services
    token = services.phrase_tokens.get(text)
    if token is None or not services.audio.alive(token):
        token = services.audio.put(await services.stack.speak(text), ttl_s=FIXED_PHRASE_TTL_S)
        services.phrase_tokens[text] = token
    return f"{_base(request)}/audio/{token}.wav"


def _play_then_record(request: Request, audio_url: str) -> Response:
    settings = request.app.state.services.settings
    response = VoiceResponse()
    response.play(audio_url)
    response.record(action=f"{_base(request)}/voice/recording", method="POST", timeout=settings.record_timeout_s,
                    max_length=settings.record_max_length_s, play_beep=False, trim="trim-silence")
    return _xml(response)


def _record_for(request: Request, params: dict[str, str]) -> CallRecord:
    services = request.app.state.services
    call_sid = params.get("CallSid", "")
    record = services.registry.find(call_sid)
    if record is None or record.ended_at is not None:
        record = CallRecord(call_sid=call_sid, stream_sid="", agent=services.agent.name, path="recording",
                            caller=params.get("From", ""), called=params.get("To", ""))
        services.registry.begin(record)
        services.metrics.active_calls.labels("recording").inc()
    return record


@router.post("/voice")
async def voice(request: Request) -> Response:
    services = request.app.state.services
    params = await accepted_webhook(request)
    if isinstance(params, Response):
        return params
    if services.draining:
        from voxline.telephony.webhooks import over_capacity

        return await over_capacity(request, params)
    return await start_recorded_call(request, params)


async def start_recorded_call(request: Request, params: dict[str, str]) -> Response:
    """The first answer of a recorded call: the greeting, then the first <Record>."""
    services = request.app.state.services
    call_sid = params.get("CallSid", "")
    log.info("incoming recorded call %s from %s", call_sid, params.get("From", "?"))
    record = _record_for(request, params)
    if not await services.store.history(call_sid, fallback=record.history):
        greeting: list[ChatMessage] = [{"role": "assistant", "content": services.agent.greeting}]
        record.history = list(greeting)
        await services.store.append(call_sid, greeting)
    return _play_then_record(request, await phrase_url(request, services.agent.greeting))


@router.post("/voice/recording")
async def recording(request: Request) -> Response:
    services = request.app.state.services
    params = await accepted_webhook(request)
    if isinstance(params, Response):
        return params
    agent = services.agent
    call_sid = params.get("CallSid", "")
    record = _record_for(request, params)
    if params.get("Digits") == "hangup":
        log.info("call %s: the caller hung up", call_sid)
        record.outcome, record.ended_at = "completed", time.time()
        record.history = await services.store.history(call_sid, fallback=record.history)
        services.registry.end(record)
        services.metrics.active_calls.labels("recording").dec()
        services.metrics.calls.labels("recording", "completed").inc()
        return _xml(VoiceResponse())

    started = time.monotonic()
    turn_started_at = time.time()  # the recording ends with the caller's silence timeout
    stages: dict[str, float | None] = {"recording_s": _number(params.get("RecordingDuration"))}
    try:
        pcm = await services.fetcher.fetch(params.get("RecordingUrl", ""))
    except RecordingUnavailable as exc:
        log.error("call %s: %s; apologising", call_sid, exc)
        record.event("error", message=str(exc), stage="fetch")
        services.metrics.provider_errors.labels("twilio-recording", "fetch").inc()
        return _play_then_record(request, await phrase_url(request, agent.apology))
    stages["fetch"] = _ms(started)
    log.info("call %s: processing %d bytes (%s s recorded)", call_sid, pcm.size * 2, params.get("RecordingDuration"))
    if pcm.size < MIN_SPEECH_S * 8000 or rms_dbfs(pcm) < SILENT_DBFS:
        log.info("call %s: empty or silent recording; re-prompting", call_sid)
        return _play_then_record(request, await phrase_url(request, agent.reprompt))

    mark = time.monotonic()
    text = await services.stack.stt.transcribe(pcm, agent.language)
    stages["stt"] = _ms(mark)
    log.info("call %s: STT result (%.0f ms): %r", call_sid, stages["stt"], text)
    if not text:
        return _play_then_record(request, await phrase_url(request, agent.reprompt))

    mark = time.monotonic()
    history = await services.store.history(call_sid, fallback=record.history)
    try:
        reply = "".join([piece async for piece in services.stack.llm.stream(
            build_prompt(agent, history, text), agent.llm.max_tokens, agent.llm.temperature)])
    except ProviderError as exc:
        log.error("call %s: LLM failed: %s; apologising", call_sid, exc)
        record.event("error", stage="llm", provider=exc.provider, error_kind=exc.kind, message=str(exc))
        services.metrics.provider_errors.labels(exc.provider, exc.kind).inc()
        return _play_then_record(request, await phrase_url(request, agent.apology))
    stages["llm"] = _ms(mark)
    spoken = speakable(reply)
    log.info("call %s: LLM reply (%.0f ms): %r", call_sid, stages["llm"], spoken)

    mark = time.monotonic()
    audio = await services.stack.speak(spoken) if spoken else b""
    stages["tts"] = _ms(mark)
    if not audio:
        return _play_then_record(request, await phrase_url(request, agent.reprompt))
    token = services.audio.put(audio)
    exchange: list[ChatMessage] = [{"role": "user", "content": text}, {"role": "assistant", "content": spoken}]
    record.history = [*history, *exchange]
    await services.store.append(call_sid, exchange)
    stages["total"] = _ms(started)
    # Numbered from the stored history, not this process's record: other workers may have taken earlier turns.
    index = sum(1 for m in history if m["role"] == "user") + 1
    record.add_turn(TurnRecord(index=index, caller_text=text, agent_text=spoken, heard_text=spoken, stages_ms=stages,
                               language=agent.language), started_at=turn_started_at)
    services.metrics.turn("recording", {k: v for k, v in stages.items() if k != "recording_s"}, False)
    services.metrics.voice_to_voice.labels("recording").observe(
        services.settings.record_timeout_s + stages["total"] / 1000)
    log.info("call %s: stages %s", call_sid, stages)
    log.info("call %s: Total Processing Time %.0f ms", call_sid, stages["total"])
    return _play_then_record(request, f"{_base(request)}/audio/{token}.wav")


@router.get("/audio/{name}")
async def audio_file(name: str, request: Request) -> Response:
    data = request.app.state.services.audio.get(name.removesuffix(".wav")) if name.endswith(".wav") else None
    if data is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(data, media_type="audio/wav", headers={"Cache-Control": "private, max-age=60"})


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)
