"""The call session: the one orchestrator for a streaming call.

Inbound 20 ms frames go through turn detection. When the caller's turn ends, a reply task runs
STT → LLM (streamed) → TTS per clause → the pacer, each clause spoken while the next is written.
If the caller starts talking while the agent's audio is unplayed, the reply is cancelled, Twilio
is told to ``clear``, and the history keeps only what the caller actually heard.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_MS, FRAME_SAMPLES, TELEPHONY_RATE
from voxline.config import AgentConfig
from voxline.engine.stack import VoiceStack
from voxline.llm.base import ChatMessage
from voxline.llm.chunking import ClauseChunker
from voxline.errors import ProviderError
from voxline.observability.metrics import Metrics
from voxline.observability.tracing import wall_clock_of
from voxline.playout.pacer import Pacer, Piece, PlayoutListener
from voxline.providers.fallback import report_fallbacks_to
from voxline.session.prompt import build_prompt
from voxline.session.listener import Listener
from voxline.session.records import CallRecord
from voxline.session.timeline import TurnRecord, TurnTimeline
from voxline.turns.detector import SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted, TurnDetector

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """One agent turn: the greeting (turn 0) or an answer to the caller."""

    turn: int
    caller_text: str
    timeline: TurnTimeline | None
    pieces: list[Piece] = field(default_factory=list)
    generated: str = ""
    task: asyncio.Task | None = None
    done_generating: bool = False
    finished: bool = False
    interrupted: bool = False
    transcribing: bool = False
    failed: bool = False
    remember: bool = False  # a fixed phrase that belongs in the conversation (greeting, language confirmation)
    cancel_after_stt: bool = False

    def heard_text(self) -> str:
        return " ".join(t for t in (p.heard_text() for p in self.pieces) if t)


@dataclass(frozen=True)
class CallLimits:
    max_duration_s: float = 1800.0
    silence_timeout_s: float = 20.0
    draining: Callable[[], bool] = lambda: False  # the server is shutting down: end after this turn


def _weakly(method: Callable[..., None]) -> Callable[..., None]:
    """``method`` without keeping its object alive. A context copied from a call's tasks can outlive
    the call: a pooled provider connection opened during the call keeps the context its callbacks
    were scheduled in, and with it, through a strong reference, the whole finished call."""
    ref = weakref.WeakMethod(method)

    def call(*args) -> None:
        target = ref()
        if target is not None:
            target(*args)

    return call


WATCH_INTERVAL_S = 0.25
GOODBYE_WAIT_S = 10.0


class CallSession:
    def __init__(self, record: CallRecord, agent: AgentConfig, stack: VoiceStack,
                 send: Callable[[str], Awaitable[None]], hangup: Callable[[], Awaitable[None]] | None = None,
                 limits: CallLimits = CallLimits(), metrics: Metrics | None = None) -> None:
        self.record = record
        self._metrics = metrics
        self._hangup = hangup
        self._limits = limits
        self._started = time.monotonic()
        self._last_activity = self._started
        self._still_there_asked = False
        self._ending = False
        self._agent = agent
        self._stack = stack
        self._detector = TurnDetector(stack.make_vad(), agent.vad)
        self._pacer = Pacer(record.stream_sid, send, agent.pace_ahead_ms, PlayoutListener(
            on_first_frame=self._on_first_frame, on_played=self._on_played, on_idle=self._on_idle,
            on_frames_sent=metrics.frame_sent if metrics else (lambda _lateness: None)))
        self._inbound = bytearray()
        self._history: list[ChatMessage] = []
        self._unanswered = ""  # caller words whose reply was never heard: merged into the next turn
        self._reply: Reply | None = None
        self._early: asyncio.Task[str | ProviderError] | None = None
        self._context: contextvars.Context | None = None
        self._prefill: asyncio.Task | None = None
        self._prefilled_at_frame = 0
        self._turns = 0
        self._tasks: set[asyncio.Task] = set()
        self._sender: asyncio.Task | None = None
        self.log = logging.LoggerAdapter(log, {"call": record.call_sid})
        self._listener = Listener(record.call_sid, agent, stack, self.log, self._fallback_used, self._spawn)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        # This call's own context: its tasks report fallbacks to this call. Set in a copy, never in
        # the context start() runs in (the server's socket callbacks share one between calls).
        self._context = contextvars.copy_context()
        self._context.run(report_fallbacks_to, _weakly(self._fallback_used))
        self._context.run(self._listener.start, self._on_provider_end_of_speech)
        self._sender = asyncio.create_task(self._pacer.run(), name=f"pacer-{self.record.call_sid}",
                                           context=self._context.copy())
        greeting = Reply(turn=0, caller_text="", timeline=None, remember=True)
        phrases: list[tuple[str, str | None]] = [(self._agent.greeting, None)]
        if not self._listener.chosen:
            phrases += [(lang.prompt, code) for code, lang in self._agent.languages.items() if lang.prompt]
        greeting.task = self._spawn(self._say_fixed(greeting, phrases))
        self._reply = greeting
        self._spawn(self._watch())

    # -- limits ------------------------------------------------------------------------------------
    def _quiet(self) -> bool:
        """Nobody is talking and no reply is on its way."""
        return (not self._detector.speaking and not self._pacer.busy
                and (self._reply is None or self._reply.finished))

    async def _watch(self) -> None:
        """Ends the call politely at the duration limit, after a silent caller, or when draining."""
        while not self._ending:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            if now - self._started > self._limits.max_duration_s:
                await self._end_politely("max-duration")
            elif self._limits.draining() and self._quiet():
                await self._end_politely("server-shutdown")
            elif not self._quiet():
                self._last_activity = now
            elif now - self._last_activity > self._limits.silence_timeout_s:
                if self._still_there_asked:
                    await self._end_politely("caller-silent")
                else:
                    self._still_there_asked = True
                    self.log.info("caller silent for %.0f s: asking if they are still there",
                                  self._limits.silence_timeout_s)
                    self._say_now(self._agent.still_there)

    def _say_now(self, text: str) -> Reply:
        self._turns += 1
        reply = Reply(turn=self._turns, caller_text="", timeline=None)
        reply.task = self._spawn(self._say_fixed(reply, [(text, None)]))
        self._reply = reply
        return reply

    async def _end_politely(self, reason: str) -> None:
        """Say goodbye, wait until it has been played, then close the stream (Twilio ends the call)."""
        self._ending = True
        self.log.info("ending the call: %s", reason)
        self.record.event("ended-by-server", reason=reason)
        self.record.outcome = reason
        if self._reply is not None and not self._reply.finished:
            await self._barge_in(self._reply)
        goodbye = self._say_now(self._agent.goodbye)
        deadline = time.monotonic() + GOODBYE_WAIT_S
        while not goodbye.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._hangup is not None:
            await self._hangup()

    async def close(self, outcome: str = "completed") -> None:
        if self._ending and self.record.outcome != "in-progress":
            outcome = self.record.outcome  # the server ended it, and said why
        for task in [*self._tasks, *( [self._sender] if self._sender else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *( [self._sender] if self._sender else []), return_exceptions=True)
        await self._listener.close()
        if self._reply and not self._reply.finished:
            self._finish(self._reply, interrupted=not self._reply.done_generating or self._pacer.busy)
        self.record.history = list(self._history)
        self.record.outcome = outcome
        self.record.ended_at = time.time()
        self.log.info("call ended (%s): %d turns", outcome, len(self.record.turns))
        self._release()

    def _release(self) -> None:
        """Drop the links between this call's parts. Its pacer, listener, tasks and their context
        all point back at the session that holds them: left as they are, a finished call (its
        audio, replies and state, ~75 kB) waits for a full garbage collection, which under load
        comes every few minutes. Broken here, it is freed as soon as its socket lets go of it."""
        self._pacer.release()
        self._reply = self._early = self._prefill = None
        self._context = None
        self._sender = None
        self._tasks.clear()

    def _spawn(self, coro) -> asyncio.Task:
        """Tasks of this call; all cancelled when it closes."""
        task = asyncio.create_task(coro, context=self._context.copy() if self._context else None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("call task failed", exc_info=task.exception())
            self.record.event("error", message=repr(task.exception()))
            if self._metrics:
                self._metrics.provider_errors.labels("embedded", type(task.exception()).__name__).inc()

    # -- inbound ---------------------------------------------------------------------------------
    def on_audio(self, ulaw: bytes) -> None:
        self._listener.hear(ulaw)
        if not self._inbound and len(ulaw) == FRAME_SAMPLES:  # the usual case: one whole 20 ms frame
            self._on_frame(mulaw.decode(ulaw))
            return
        self._inbound.extend(ulaw)
        while len(self._inbound) >= FRAME_SAMPLES:
            frame = mulaw.decode(bytes(self._inbound[:FRAME_SAMPLES]))
            del self._inbound[:FRAME_SAMPLES]
            self._on_frame(frame)

    def _on_frame(self, frame: np.ndarray) -> None:
        event = self._detector.process(frame)
        if event is not None:
            self._on_turn_event(event)
        elif self._detector.speaking:
            self._maybe_prefill()

    def on_mark(self, name: str) -> None:
        self._pacer.on_mark(name)

    def on_dtmf(self, digit: str) -> None:
        self.log.info("DTMF %s", digit)
        self.record.event("dtmf", digit=digit)
        for code, language in self._agent.languages.items():
            if language.dtmf == digit and not self._ending:
                self._spawn(self._on_language_key(code))

    def _on_turn_event(self, event) -> None:
        if isinstance(event, SpeechStarted):
            self._still_there_asked = False
            self.log.info("speech started (confidence %.2f)", event.confidence)
            self._detector.start_ratio = self._agent.vad.start_ratio
            self._prefilled_at_frame = 0
            if self._reply is not None and not self._reply.finished:
                self._spawn(self._barge_in(self._reply))
        elif isinstance(event, SpeechPaused):
            self.log.info("processing %d bytes (early, the caller paused)", event.audio.size * 2)
            self._early = self._spawn(self._listener.early(event.audio))
        elif isinstance(event, SpeechResumed):
            self._drop_early()
        elif isinstance(event, SpeechEnded):
            self._on_speech_ended(event)

    def _maybe_prefill(self) -> None:
        """Every ``prefill_every_ms`` of speech, transcribe it so far and let the LLM read it early."""
        every = self._agent.llm.prefill_every_ms // FRAME_MS
        frames = self._detector.utterance_frames
        if not self._stack.llm.prefills_locally or not every or frames - self._prefilled_at_frame < every or self._detector.in_silence:
            return  # in a silence the early transcription is about to need the STT
        if self._prefill is not None and not self._prefill.done():
            return
        if self._reply is not None and not self._reply.finished:
            return  # the LLM is busy with a reply (or about to be cancelled by a barge-in)
        self._prefilled_at_frame = frames
        self._prefill = self._spawn(self._prefill_partial(self._detector.utterance_audio()))

    async def _prefill_partial(self, audio: np.ndarray) -> None:
        partial = await self._listener.partial(audio)
        if partial and self._detector.speaking:
            await self._stack.llm.prefill(self._prompt(self._with_unanswered(partial)))

    def _with_unanswered(self, text: str) -> str:
        return " ".join(t for t in (self._unanswered, text) if t)

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    def _on_speech_ended(self, event: SpeechEnded, provider_ended: bool = False) -> None:
        now = time.monotonic()
        self.log.info("speech ended (%d silence frames, %d ms voiced%s)", event.silence_frames, event.voiced_ms,
                      ", end reported by the STT provider" if provider_ended else "")
        early, self._early = self._early, None
        if event.voiced_ms < self._agent.vad.min_speech_ms:
            self.log.info("ignored: too short to be speech")
            if early:
                early.cancel()
            self._listener.reset()
            return
        self._turns += 1
        timeline = TurnTimeline(turn=self._turns, speech_end=now - event.silence_frames * FRAME_MS / 1000,
                                turn_detected=now, stt_early=early is not None)
        reply = Reply(turn=self._turns, caller_text="", timeline=timeline)
        reply.task = self._spawn(self._respond(reply, event.audio, early, provider_ended))
        self._reply = reply

    # -- speech-to-text ---------------------------------------------------------------------------
    def _on_provider_end_of_speech(self) -> None:
        """The provider heard the end of the utterance: end the turn now if our VAD hears silence too."""
        if self._ending or not self._detector.speaking or not self._detector.in_silence:
            return
        event = self._detector.end_now()
        if event is not None:
            self._on_speech_ended(event, provider_ended=True)

    def _fallback_used(self, stage: str, exc: ProviderError, fallback: str) -> None:
        self.log.warning("%s failed (%s): this turn uses %s", stage.upper(), exc, fallback)
        self.record.event("fallback", stage=stage, provider=exc.provider, error_kind=exc.kind, fallback=fallback,
                          message=str(exc))
        if self._metrics:
            self._metrics.provider_errors.labels(exc.provider, exc.kind).inc()

    # -- replies ---------------------------------------------------------------------------------
    async def _barge_in(self, reply: Reply) -> None:
        heard_any = any(p.first_frame_at for p in reply.pieces)
        if reply.transcribing:
            # Let the transcription finish so the caller's words are kept for the next turn.
            reply.cancel_after_stt = True
            self.log.info("caller went on speaking: reply %d will not be generated", reply.turn)
            return
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
        if self._pacer.busy:
            await self._pacer.interrupt()
            self.log.info("barge-in: cleared the agent's audio (turn %d)", reply.turn)
            self.record.event("barge-in", turn=reply.turn)
            if self._metrics:
                self._metrics.barge_ins.inc()
        elif not heard_any:
            self.log.info("caller went on speaking: reply %d cancelled before any audio", reply.turn)
        if not reply.finished:
            self._finish(reply, interrupted=True)

    async def _say_fixed(self, reply: Reply, phrases: list[tuple[str, str | None]]) -> None:
        """Fixed phrases, each in its language's voice (None: the agent's default voice)."""
        reply.generated = " ".join(text for text, _ in phrases)
        for text, language in phrases:
            self._queue_piece(reply, text, await self._stack.speak(text, language))
        reply.done_generating = True
        self._maybe_finish(reply)

    # -- languages ---------------------------------------------------------------------------------
    def _voice(self) -> str | None:
        return self._listener.language if self._agent.languages else None

    def _language_named_in(self, text: str) -> str | None:
        folded = text.casefold()
        for code, language in self._agent.languages.items():
            if any(keyword.casefold() in folded for keyword in language.keywords):
                return code
        return None

    def _choose_language(self, code: str, how: str) -> Reply:
        self._listener.choose(code)
        self.log.info("language: %s (%s)", self._agent.languages[code].name, how)
        self.record.event("language", language=code, by=how)
        self._turns += 1
        reply = Reply(turn=self._turns, caller_text="", timeline=None, remember=True)
        reply.task = self._spawn(self._say_fixed(reply, [(self._agent.languages[code].confirmation, code)]))
        self._reply = reply
        return reply

    async def _on_language_key(self, code: str) -> None:
        if self._reply is not None and not self._reply.finished:
            await self._barge_in(self._reply)
        self._choose_language(code, "keypad")

    async def _respond(self, reply: Reply, audio: np.ndarray, early: asyncio.Task[str | ProviderError] | None,
                       provider_ended: bool = False) -> None:
        timeline = reply.timeline
        assert timeline is not None
        started = time.monotonic()
        reply.transcribing = True
        try:
            text = await self._listener.final(audio, early, provider_ended)
        except ProviderError as exc:
            self._provider_failed(reply, "stt", exc)
            await self._say_apology(reply)
            return
        finally:
            reply.transcribing = False
        timeline.mark("stt_final")
        self.log.info("STT result (%s, %.0f ms after end of speech): %r",
                      "early" if early is not None else "final",
                      (timeline.stt_final - timeline.speech_end) * 1000, text)
        caller_text = self._with_unanswered(text)
        reply.caller_text = caller_text
        if text:
            self.record.transcribed = (reply.turn, caller_text)
        if reply.cancel_after_stt:
            self._finish(reply, interrupted=True)
            return
        if not self._listener.chosen:
            self._listener.chosen = True  # the first thing the caller says settles it, named or not
            if (code := self._language_named_in(text)) is not None:
                reply.finished = True
                self._choose_language(code, "speech")
                return
        if not text:
            self.log.info("no words recognised; ready for next input")
            reply.finished = True
            return
        messages = self._prompt(caller_text)
        self.log.info("LLM streaming (%d messages)", len(messages))
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = self._spawn(self._speak(reply, pieces))
        chunker = ClauseChunker(first_max_words=self._agent.llm.first_piece_max_words)
        try:
            async for token in self._stack.llm.stream(messages, self._agent.llm.max_tokens,
                                                      self._agent.llm.temperature):
                timeline.mark("llm_first_token")
                reply.generated += token
                for piece in chunker.push(token):
                    pieces.put_nowait(piece)
            for piece in chunker.flush():
                pieces.put_nowait(piece)
        except ProviderError as exc:
            # What was already generated is still spoken; then a short apology, and the call goes on.
            self._provider_failed(reply, "llm", exc)
            for piece in chunker.flush():
                pieces.put_nowait(piece)
            pieces.put_nowait(self._agent.apology)
        finally:
            pieces.put_nowait(None)
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                speaker.cancel()
        await speaker
        reply.done_generating = True
        self.log.info("reply generated in %.0f ms: %r", (time.monotonic() - started) * 1000, reply.generated)
        self._maybe_finish(reply)

    def _provider_failed(self, reply: Reply, stage: str, exc: ProviderError) -> None:
        self.log.error("%s failed: %s", stage.upper(), exc)
        self.record.event("error", stage=stage, provider=exc.provider, error_kind=exc.kind, message=str(exc))
        if self._metrics:
            self._metrics.provider_errors.labels(exc.provider, exc.kind).inc()
        reply.failed = True

    async def _say_apology(self, reply: Reply) -> None:
        """The pre-rendered apology: it plays even while the TTS provider is failing."""
        self._queue_piece(reply, self._agent.apology, await self._stack.speak(self._agent.apology))
        reply.done_generating = True
        self._maybe_finish(reply)

    async def _speak(self, reply: Reply, pieces: asyncio.Queue[str | None]) -> None:
        while (text := await pieces.get()) is not None:
            try:
                audio = await self._stack.speak(text, self._voice())
            except ProviderError as exc:
                self._provider_failed(reply, "tts", exc)
                self._queue_piece(reply, self._agent.apology, await self._stack.speak(self._agent.apology))
                while await pieces.get() is not None:  # drop the rest of the reply
                    pass
                return
            if reply.timeline:
                reply.timeline.mark("first_audio")
            self._queue_piece(reply, text, audio)

    def _queue_piece(self, reply: Reply, text: str, audio: bytes) -> None:
        if reply.finished or not audio:
            return
        piece = Piece(turn=reply.turn, index=len(reply.pieces), text=text, audio=audio)
        reply.pieces.append(piece)
        self._detector.start_ratio = self._agent.vad.barge_in_ratio
        self._pacer.enqueue(piece)

    def _prompt(self, caller_text: str) -> list[ChatMessage]:
        language = self._agent.languages.get(self._listener.language)
        return build_prompt(self._agent, self._history, caller_text, language.instruction if language else "")

    # -- playout callbacks -------------------------------------------------------------------------
    def _reply_for(self, piece: Piece) -> Reply | None:
        reply = self._reply
        return reply if reply is not None and reply.turn == piece.turn else None

    def _on_first_frame(self, piece: Piece) -> None:
        reply = self._reply_for(piece)
        if reply and reply.timeline:
            reply.timeline.mark("first_frame_sent")

    def _on_played(self, piece: Piece) -> None:
        reply = self._reply_for(piece)
        if reply is None:
            return
        if reply.timeline:
            reply.timeline.mark("first_mark_echoed")
        self._maybe_finish(reply)

    def _on_idle(self) -> None:
        self._detector.start_ratio = self._agent.vad.start_ratio

    def _maybe_finish(self, reply: Reply) -> None:
        if not reply.finished and reply.done_generating and all(p.played_at for p in reply.pieces):
            self._finish(reply, interrupted=False)

    def _finish(self, reply: Reply, interrupted: bool) -> None:
        reply.finished = True
        reply.interrupted = interrupted
        heard = reply.heard_text()
        if reply.remember:
            if heard:
                self._history.append({"role": "assistant", "content": heard})
        elif reply.caller_text:
            if heard:
                self._history += [{"role": "user", "content": reply.caller_text},
                                  {"role": "assistant", "content": heard}]
                self._unanswered = ""
            else:
                self._unanswered = reply.caller_text
        if reply.timeline is not None:
            reply.timeline.completed = time.monotonic()
            stages = reply.timeline.offsets_ms()
            speech_end_at = wall_clock_of(reply.timeline.speech_end)  # one timestamp for the record and the trace
            self.record.add_turn(TurnRecord(
                index=reply.turn, caller_text=reply.caller_text, agent_text=reply.generated,
                heard_text=heard, interrupted=interrupted, stages_ms=stages, stt_early=reply.timeline.stt_early,
                failed=reply.failed, language=self._listener.language),
                started_at=speech_end_at)
            total = (reply.timeline.completed - reply.timeline.speech_end) * 1000
            self.log.info("turn %d stages (ms after end of speech): %s", reply.turn, stages)
            if self._metrics:
                self._metrics.turn(self.record.path, stages, interrupted)
                if stages.get("first_frame_sent") is not None:
                    self._metrics.voice_to_voice.labels(self.record.path).observe(stages["first_frame_sent"] / 1000)
                self._metrics.tracer.turn(self.record.call_sid, self.record.path, reply.turn, speech_end_at,
                                          stages, total, interrupted, reply.failed)
            self.log.info("total processing time %.0f ms%s", total, " (interrupted)" if interrupted else "")
        self.log.info("ready for next input")
