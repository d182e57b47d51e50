"""The recording path: ``POST /voice`` and its ``<Record>`` action, one webhook per turn.

The fallback to streaming and the baseline it is measured against. Twilio records the caller
until ``timeout`` seconds of silence, posts the recording's URL; Voxline fetches it, transcribes,
asks the LLM, synthesizes the whole reply and answers ``<Play>`` of a URL it serves, followed by
the next ``<Record>``. The conversation lives in the call store, so any worker can take any turn.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import VoiceResponse

from voxline.audio.pcm import rms_dbfs
from voxline.engine.fallback import report_fallbacks_to
from voxline.errors import ProviderError
from voxline.knowledge.facts import FactBook
from voxline.llm.base import ChatMessage
from voxline.llm.events import ToolCall
from voxline.logs import Private
from voxline.observability.metrics import Metrics
from voxline.services import Services, ServicesDep
from voxline.session.farewell import is_farewell
from voxline.session.handoff import wants_a_person
from voxline.session.prompt import build_prompt, known_answer
from voxline.session.records import CallRecord
from voxline.session.responder import Responder, Stage
from voxline.session.timeline import TurnRecord
from voxline.session.tool_use import ToolOutcome
from voxline.telephony.admission import accepted_webhook, base_url, busy, phrase_url
from voxline.telephony.messages import shown
from voxline.telephony.recordings import RecordingUnavailable
from voxline.telephony.rest import dial_verb
from voxline.telephony.transfer_webhooks import whisper_url

log = logging.getLogger(__name__)
router = APIRouter()

SILENT_DBFS = -50.0
MIN_SPEECH_S = 0.2


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _play_then_record(services: Services, request: Request, audio_url: str) -> Response:
    settings = services.settings
    response = VoiceResponse()
    response.play(audio_url)
    response.record(
        action=f"{base_url(services, request)}/voice/recording",
        method="POST",
        timeout=settings.record_timeout_s,
        max_length=settings.record_max_length_s,
        play_beep=False,
        trim="trim-silence",
    )
    return _xml(response)


def _record_for(services: Services, params: dict[str, str]) -> CallRecord:
    call_sid = params.get("CallSid", "")
    record = services.registry.find(call_sid)
    if record is None or record.ended_at is not None:
        record = CallRecord(
            call_sid=call_sid,
            stream_sid="",
            agent=services.agent.name,
            path="recording",
            caller=params.get("From", ""),
            called=params.get("To", ""),
        )
        services.registry.begin(record)
        services.metrics.active_calls.labels("recording").inc()
    return record


@router.post("/voice")
async def voice(request: Request, services: ServicesDep) -> Response:
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    if services.draining:
        log.warning("call %s turned away: shutting down", shown(params.get("CallSid", "?")))
        return await busy(services, request)
    return await start_recorded_call(services, request, params)


async def start_recorded_call(services: Services, request: Request, params: dict[str, str]) -> Response:
    """The first answer of a recorded call: the greeting, then the first <Record>."""
    call_sid = params.get("CallSid", "")
    log.info("incoming recorded call %s from %s", shown(call_sid), Private(params.get("From", "?")))
    record = _record_for(services, params)
    if not await services.store.history(call_sid, fallback=record.history):
        greeting: list[ChatMessage] = [{"role": "assistant", "content": services.agent.greeting}]
        record.history = list(greeting)
        await services.store.append(call_sid, greeting)
    return _play_then_record(services, request, await phrase_url(services, request, services.agent.greeting))


@router.post("/voice/recording")
async def recording(request: Request, services: ServicesDep) -> Response:
    params = await accepted_webhook(services, request)
    if isinstance(params, Response):
        return params
    call_sid = params.get("CallSid", "")
    if params.get("Digits") == "hangup":
        known = services.registry.find(call_sid)
        if known is None or known.ended_at is not None:
            log.info("call %s: hang-up for a call that is not in progress; nothing to do", shown(call_sid))
        else:
            log.info("call %s: the caller hung up", shown(call_sid))
            await _end_recorded_call(services, known)
        return _xml(VoiceResponse())
    event = params.get("RecordingSid") or params.get("RecordingUrl") or ""
    if not event:
        return await _recorded_turn(services, request, params)

    async def answer() -> bytes:
        return bytes((await _recorded_turn(services, request, params)).body)

    body, replayed = await services.answered.answer(event, answer)
    if replayed:
        log.warning("call %s: recording %s was already answered; the same answer again", shown(call_sid), shown(event))
    return Response(body, media_type="application/xml")


async def _recorded_turn(services: Services, request: Request, params: dict[str, str]) -> Response:
    """One recording: transcribe it, answer it, and record again (a goodbye: hang up)."""
    agent = services.agent
    call_sid = params.get("CallSid", "")
    record = _record_for(services, params)
    started = time.monotonic()
    turn_started_at = time.time()  # the recording ends with the caller's silence timeout
    stages: dict[str, float | None] = {"recording_s": _number(params.get("RecordingDuration"))}
    try:
        pcm = await services.fetcher.fetch(params.get("RecordingUrl", ""))
    except RecordingUnavailable as exc:
        log.error("call %s: %s; apologising", call_sid, exc)
        record.event("error", message=str(exc), stage="fetch")
        services.metrics.provider_errors.labels("twilio-recording", "fetch").inc()
        return _play_then_record(services, request, await phrase_url(services, request, agent.apology))
    stages["fetch"] = _ms(started)
    log.info("call %s: processing %d bytes (%s s recorded)", call_sid, pcm.size * 2, params.get("RecordingDuration"))
    if pcm.size < MIN_SPEECH_S * 8000 or rms_dbfs(pcm) < SILENT_DBFS:
        log.info("call %s: empty or silent recording; re-prompting", call_sid)
        return _play_then_record(services, request, await phrase_url(services, request, agent.reprompt))

    assert services.stack is not None  # accepted_webhook answers 503 while the models load
    responder = Responder(agent, services.stack)
    report_fallbacks_to(partial(_fallback_used, record, services.metrics))  # this request's context only
    mark = time.monotonic()
    try:
        text = await responder.transcribe(pcm, agent.language)
    except ProviderError as exc:
        log.error("call %s: STT failed: %s; apologising", call_sid, exc)
        _provider_failed(record, services.metrics, "stt", exc)
        return _play_then_record(services, request, await phrase_url(services, request, agent.apology))
    stages["stt"] = _ms(mark)
    log.info("call %s: STT result (%.0f ms): %r", call_sid, stages["stt"], Private(text))
    if not text:
        return _play_then_record(services, request, await phrase_url(services, request, agent.reprompt))
    if is_farewell(text):  # the agent's goodbye, then <Hangup/>: no further <Record>
        log.info("call %s: the caller said goodbye", call_sid)
        response = await _closing_turn(services, request, record, text, agent.goodbye, stages, turn_started_at)
        response.hangup()  # Twilio calls back no more: the call ends here
        record.event("hung-up")
        await _end_recorded_call(services, record)
        return _xml(response)
    if agent.transfer.number and wants_a_person(text):  # the hand-off phrase, then <Dial>
        log.info("call %s: the caller asked for a person", call_sid)
        transfer = agent.transfer
        response = await _closing_turn(services, request, record, text, transfer.phrase, stages, turn_started_at)
        base = base_url(services, request)
        whisper = whisper_url(base, call_sid) if transfer.whisper else ""
        caller_id = transfer.caller_id or params.get("To", "")
        response.append(
            dial_verb(transfer.number, caller_id, transfer.timeout_s, f"{base}/voice/transfer-status", whisper)
        )
        record.event("transfer", to=transfer.number, outcome="dialling")
        await _end_recorded_call(services, record, "transferred")
        return _xml(response)

    mark = time.monotonic()
    history = await services.store.history(call_sid, fallback=record.history)
    reply = _WholeReply(record, services.metrics, mark)
    facts = FactBook.from_prompt(agent.system_prompt)
    if (known := known_answer(agent.hours.schedule(), facts, agent.language, text)) is not None:
        reply.said(known)  # from the opening hours or the facts, not the LLM
        await responder.say([(known, None)], reply)
    else:
        await responder.answer(build_prompt(agent, history, text), None, reply)
    answered_ms = _ms(mark)
    llm_ms = answered_ms if reply.generated_at is None else round((reply.generated_at - mark) * 1000, 1)
    stages["llm"], stages["tts"] = llm_ms, round(answered_ms - llm_ms, 1)
    spoken = " ".join(reply.texts)
    log.info("call %s: reply (%.0f ms): %r", call_sid, _ms(mark), Private(spoken))
    if not reply.audio:
        return _play_then_record(services, request, await phrase_url(services, request, agent.reprompt))
    token = services.audio.put(b"".join(reply.audio), call_sid=call_sid)
    exchange: list[ChatMessage] = [{"role": "user", "content": text}, {"role": "assistant", "content": spoken}]
    record.history = [*history, *exchange]
    await services.store.append(call_sid, exchange)
    total_ms = stages["total"] = _ms(started)
    # Numbered from the stored history, not this process's record: other workers may have taken earlier turns.
    index = sum(1 for m in history if m["role"] == "user") + 1
    record.add_turn(
        TurnRecord(
            index=index,
            caller_text=text,
            agent_text=reply.generated,
            heard_text=spoken,
            stages_ms=stages,
            failed=reply.had_failure,
            language=agent.language,
        ),
        started_at=turn_started_at,
    )
    services.metrics.turn("recording", {k: v for k, v in stages.items() if k != "recording_s"}, False)
    services.metrics.voice_to_voice.labels("recording").observe(services.settings.record_timeout_s + total_ms / 1000)
    log.info("call %s: stages %s", call_sid, stages)
    log.info("call %s: Total Processing Time %.0f ms", call_sid, total_ms)
    return _play_then_record(services, request, f"{base_url(services, request)}/audio/{token}.wav")


async def _closing_turn(
    services: Services,
    request: Request,
    record: CallRecord,
    text: str,
    phrase: str,
    stages: dict[str, float | None],
    started_at: float,
) -> VoiceResponse:
    """The caller's last turn, answered with a fixed phrase (a goodbye, the hand-off): recorded
    and remembered; the TwiML plays it, and the caller adds what follows."""
    history = await services.store.history(record.call_sid, fallback=record.history)
    turn = TurnRecord(
        index=sum(1 for m in history if m["role"] == "user") + 1,
        caller_text=text,
        agent_text=phrase,
        heard_text=phrase,
        stages_ms=stages,
        language=services.agent.language,
    )
    record.add_turn(turn, started_at=started_at)
    await services.store.append(
        record.call_sid, [{"role": "user", "content": text}, {"role": "assistant", "content": phrase}]
    )
    response = VoiceResponse()
    response.play(await phrase_url(services, request, phrase))
    return response


async def _end_recorded_call(services: Services, record: CallRecord, outcome: str = "completed") -> None:
    record.outcome, record.ended_at = outcome, time.time()
    record.history = await services.store.history(record.call_sid, fallback=record.history)
    services.registry.end(record)
    services.metrics.active_calls.labels("recording").dec()
    services.metrics.calls.labels("recording", outcome).inc()


class _WholeReply:
    """The responder's sink on the recording path: the whole reply, joined into one file."""

    def __init__(self, record: CallRecord, metrics: Metrics, started: float) -> None:
        self._record = record
        self._metrics = metrics
        self.generated = ""
        self.texts: list[str] = []
        self.audio: list[bytes] = []
        self.had_failure = False
        self.generated_at: float | None = None  # when the last token came

    def token(self, text: str) -> None:
        self.generated += text
        self.generated_at = time.monotonic()

    def tool_call(self, call: ToolCall) -> None:
        log.warning("call %s: the LLM asked for tool %r; no tools are configured", self._record.call_sid, call.name)
        self._record.event("tool-call", name=call.name, handled=False)

    async def use_tool(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(call, ok=False, error="the recording path offers no tools")

    def said(self, text: str) -> None:
        self.generated = f"{self.generated} {text}".strip()

    async def confirmed(self) -> None:
        pass

    def clause(self, text: str, audio: bytes) -> None:
        if audio:
            self.texts.append(text)
            self.audio.append(audio)

    def failed(self, stage: Stage, error: ProviderError) -> None:
        log.error("call %s: %s failed: %s; apologising", self._record.call_sid, stage.upper(), error)
        _provider_failed(self._record, self._metrics, stage, error)
        self.had_failure = True


def _provider_failed(record: CallRecord, metrics: Metrics, stage: str, exc: ProviderError) -> None:
    record.event("error", stage=stage, provider=exc.provider, error_kind=exc.kind, message=str(exc))
    metrics.provider_errors.labels(exc.provider, exc.kind).inc()


def _fallback_used(record: CallRecord, metrics: Metrics, stage: str, exc: ProviderError, fallback: str) -> None:
    record.event(
        "fallback", stage=stage, provider=exc.provider, error_kind=exc.kind, fallback=fallback, message=str(exc)
    )
    metrics.provider_errors.labels(exc.provider, exc.kind).inc()


@router.get("/audio/{name}")
async def audio_file(name: str, services: ServicesDep) -> Response:
    data = services.audio.get(name.removesuffix(".wav")) if name.endswith(".wav") else None
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
