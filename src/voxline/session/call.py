"""The call session: the one orchestrator for a live call (a Media Stream or the softphone).

Inbound 20 ms frames go to the turn-taking policy. When it says the caller's turn ended, a reply
(``session.speech.Reply``) runs the responder: STT → LLM (streamed) → TTS per clause → the pacer,
each clause spoken while the next is written. When the policy says the caller spoke over the
agent, the reply is cancelled, the line is cleared, and the history keeps only what the caller
heard. Every reply ends in ``TurnBook.settle``, which records it.

Lifetimes follow structure: the session's tasks live in one task group (``run``), a reply's LLM
and TTS in the responder's own group inside the reply's task; cancelling the session cancels
all of it. Collaborators push events into the call's ``Inbox`` instead of holding the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_MS, FRAME_SAMPLES
from voxline.config import AgentConfig
from voxline.engine.fallback import report_fallbacks_to
from voxline.engine.stack import VoiceStack
from voxline.errors import ProviderError
from voxline.knowledge.facts import FactBook
from voxline.llm.base import ChatMessage
from voxline.llm.events import ToolCall
from voxline.logs import Private
from voxline.observability.metrics import Metrics
from voxline.playout.line import Line
from voxline.playout.pacer import FirstFrameSent, Pacer, Piece
from voxline.session.control import CallControl, CallControlUnavailable, NoCallControl
from voxline.session.farewell import is_farewell
from voxline.session.handoff import wants_a_person
from voxline.session.inbox import EarlyTextReady, FallbackUsed, Inbox, ProviderEndOfSpeech, SessionEvent, Stop
from voxline.session.keypad import Entry, Keypad, KeypadOutcome, LanguageKey
from voxline.session.listener import EarlyText, Listener
from voxline.session.prompt import build_prompt, known_answer
from voxline.session.records import CallRecord
from voxline.session.responder import Responder, Stage
from voxline.session.speech import EndReason, Reply, ReplyKind, ReplyState, Speech
from voxline.session.timeline import TurnTimeline
from voxline.session.tool_use import CallActions, ToolOutcome, ToolUser
from voxline.session.turnbook import TurnBook
from voxline.tools.definitions import tool_definitions
from voxline.tools.http_tools import HttpTools
from voxline.turns.completeness import Ending
from voxline.turns.echo import EchoReference
from voxline.turns.overlap import OverlapKind, classify_overlap
from voxline.turns.policy import (
    AdaptiveTurnTaking,
    CallerPaused,
    CallerResumed,
    CallerStarted,
    Interruption,
    InterruptionConfirmed,
    NoiseIgnored,
    SilenceTurnTaking,
    TurnDecision,
    TurnEnded,
    TurnTaking,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_INTERVAL_S = 0.25
GOODBYE_WAIT_S = 10.0
VOICEMAIL_WAIT_S = 90.0  # a voicemail message is heard in full before the call ends
ANSWER_MARGIN_S = 2.0  # past Twilio's own detection timeout, before the agent greets whoever it is
MACHINE_GREETING_S = 60.0  # after 'machine_start', how long its greeting may take to end
MACHINE_ENDS = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})


@dataclass(frozen=True)
class CallLimits:
    max_duration_s: float = 1800.0
    silence_timeout_s: float = 20.0
    draining: Callable[[], bool] = lambda: False  # the server is shutting down: end after this turn


class _ReplyOutput:
    """The responder's sink for one reply: timeline marks, generated text, pieces to the pacer."""

    def __init__(self, session: CallSession, reply: Reply, speech: Speech) -> None:
        self._session = session
        self._reply = reply
        self._speech = speech
        self._after_phrase = False

    def token(self, text: str) -> None:
        if self._reply.timeline is not None:
            self._reply.timeline.mark("llm_first_token", self._session.now())
        if self._after_phrase and text.strip():
            text, self._after_phrase = (text if text[0].isspace() else " " + text), False
        self._reply.generated += text

    def tool_call(self, call: ToolCall) -> None:
        self._session.log.warning("the LLM asked for tool %r; no tools are configured", call.name)
        self._session.record.event("tool-call", turn=self._reply.turn, name=call.name, handled=False)

    async def use_tool(self, call: ToolCall) -> ToolOutcome:
        if self._reply.timeline is not None:  # the LLM's answer was this call
            self._reply.timeline.mark("llm_first_token", self._session.now())
        return await self._session.use_tool(self._reply, call)

    def said(self, text: str) -> None:
        self._reply.generated = f"{self._reply.generated} {text}".strip()
        self._after_phrase = True  # the LLM's next words are a new sentence

    async def confirmed(self) -> None:
        while self._reply.speculative:  # noqa: ASYNC110  (the turn-taking policy confirms it, or it is cancelled)
            await asyncio.sleep(0.02)

    def clause(self, text: str, audio: bytes) -> None:
        if self._reply.timeline is not None:
            self._reply.timeline.mark("first_audio", self._session.now())
        self._session.queue_piece(self._reply, self._speech, text, audio)

    def failed(self, stage: Stage, error: ProviderError) -> None:
        self._session.provider_failed(self._reply, stage, error)


class CallSession:
    def __init__(
        self,
        record: CallRecord,
        agent: AgentConfig,
        stack: VoiceStack,
        line: Line,
        control: CallControl | None = None,
        limits: CallLimits = CallLimits(),
        metrics: Metrics | None = None,
        turn_taking: TurnTaking | None = None,
        clock: Callable[[], float] = time.monotonic,
        outbound: bool = False,
        tools: HttpTools | None = None,
    ) -> None:
        """``outbound``: a call the agent placed; it is silent until Twilio says who answered.
        ``tools``: the business's tools (the agent file's ``[[tools]]``) and its webhook."""
        self.record = record
        self.log = logging.LoggerAdapter(log, {"call": record.call_sid})
        self._agent = agent
        self._stack = stack
        self._control: CallControl = control or NoCallControl()
        self._limits = limits
        self._metrics = metrics
        self._clock = clock
        self._inbox = Inbox()
        self._echo = EchoReference(agent.turns.echo, clock)
        self._turn_taking: TurnTaking = turn_taking or (
            AdaptiveTurnTaking(stack.make_vad(), agent.vad, agent.turns, self._echo)
            if agent.turns.end_of_turn == "adaptive"
            else SilenceTurnTaking(stack.make_vad(), agent.vad)
        )
        self._pacer = Pacer(
            line,
            agent.pace_ahead_ms,
            self._inbox.put,
            on_frames_sent=metrics.frame_sent if metrics else _no_lateness,
            clock=clock,
            on_audio=self._echo.sent,
        )
        self._listener = Listener(record.call_sid, agent, stack, self.log, self._inbox.end_of_speech)
        self._responder = Responder(agent, stack)
        listener = self._listener  # (not self: nothing the session holds may point back at it)
        self._book = TurnBook(record, metrics, self.log, lambda: listener.language, clock)
        self._keypad = Keypad(agent.keypad, {lang.dtmf: code for code, lang in agent.languages.items() if lang.dtmf})
        self._keypad_timer: asyncio.Task[None] | None = None
        self._awaiting_answer = outbound
        self._tool_user = ToolUser(agent, tools, record, self.log)
        self._tools = tool_definitions(agent) or None  # as the LLM sees them
        self._schedule = agent.hours.schedule()
        self._facts = FactBook.from_prompt(agent.system_prompt)
        self._answered_by = ""
        self._answer_known = asyncio.Event()
        self._inbound = bytearray()
        self._reply: Reply | None = None  # the latest reply (the one the caller would interrupt)
        self._live: dict[int, Reply] = {}  # replies not ended yet, by turn
        self._turns = 0
        self._early: EarlyText | None = None
        self._speculative: Reply | None = None  # started at the caller's pause, not confirmed yet
        self._prefill: asyncio.Task[None] | None = None
        self._prefilled_at_frame = 0
        self._started = clock()
        self._last_activity = self._started
        self._still_there_asked = False
        self._ending = False
        self._group: asyncio.TaskGroup | None = None
        self._context: contextvars.Context | None = None  # this call's: its tasks report fallbacks to its inbox
        self._children: set[asyncio.Task[object]] = set()
        self._waiting: list[tuple[Coroutine[object, object, None], str]] = []  # spawned before run() began
        self._runner: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        # This call's own context: its tasks report fallbacks to its inbox. Set in a copy, never in
        # the context start() runs in (the server's socket callbacks share one between calls).
        self._context = contextvars.copy_context()
        self._context.run(report_fallbacks_to, self._inbox.fallback_used)
        # Now, not in run(): the frames that follow ``start`` in the same read must reach a live STT.
        self._context.run(self._listener.start)
        self._runner = asyncio.create_task(
            self.run(), name=f"call-{self.record.call_sid}", context=self._context.copy()
        )

    async def run(self) -> None:
        """The call's life: its task group, until ``close`` pushes ``Stop``.

        It ends by returning, not by being cancelled: a cancelled task keeps its exception, whose
        traceback holds this frame, which holds the task group and so the task: a cycle that would
        keep the finished call until a full garbage collection."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._spawn(self._pacer.run(), "pacer")
            self._spawn(self._watch(), "watch")
            waiting, self._waiting = self._waiting, []
            for coro, name in waiting:
                self._spawn(coro, name)
            if self._awaiting_answer:
                self._spawn(self._await_answer(), "answer")
            else:
                self._greet()
            while not isinstance(event := await self._inbox.get(), Stop):
                self._handle(event)
            self._group = None
            for task in list(self._children):
                task.cancel()

    async def close(self, outcome: str = "completed") -> None:
        if self._ending and self.record.outcome != "in-progress":
            outcome = self.record.outcome  # the server ended it, and said why
        if self._runner is not None:
            self._inbox.put(Stop())
            try:
                await self._runner
            except Exception:  # a bug in the session itself: the call still closes and is recorded
                self.log.exception("the call session failed")
            self._runner = None
        self._group = self._context = None
        for coro, _ in self._waiting:
            coro.close()
        self._waiting.clear()
        await self._listener.close()
        self._pacer.cut()  # how much of what was playing the caller heard before hanging up
        for reply in list(self._live.values()):
            self._settle(reply, ReplyState.INTERRUPTED if reply.audible else ReplyState.DISCARDED, EndReason.HANGUP)
        self._early = self._prefill = None
        self.record.history = list(self._book.history)
        self.record.outcome = outcome
        self.record.ended_at = time.time()
        self.log.info("call ended (%s): %d turns", outcome, len(self.record.turns))

    def now(self) -> float:
        return self._clock()

    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> asyncio.Task[None] | None:
        """A task of this call, cancelled when the call closes; a failure is logged, not fatal."""
        if self._group is None:
            if self._runner is None:  # closed
                coro.close()
            else:
                self._waiting.append((coro, name))
            return None
        return self._task(self._supervised(coro, name), name)

    def _task(self, coro: Coroutine[object, object, T], name: str) -> asyncio.Task[T]:
        """In the call's task group and context; remembered until done, so ``run`` can stop it."""
        assert self._group is not None
        task = self._group.create_task(
            coro, name=f"{name}-{self.record.call_sid}", context=self._context.copy() if self._context else None
        )
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    async def _supervised(self, coro: Coroutine[object, object, None], name: str) -> None:
        try:
            await coro
        except Exception as exc:  # a bug: logged and counted, and the call goes on
            self.log.error("call task %s failed", name, exc_info=exc)
            self.record.event("error", stage="internal", task=name, message=repr(exc))
            if self._metrics:  # by kind of task ("turn", not "turn-12"): a bounded label
                self._metrics.internal_errors.labels(re.sub(r"-\d+$", "", name)).inc()

    def _handle(self, event: SessionEvent) -> None:
        if isinstance(event, FirstFrameSent):
            reply = self._live.get(event.piece.turn)
            if reply is not None and reply.timeline is not None:
                reply.timeline.mark("first_frame_sent", event.at)
        elif isinstance(event, ProviderEndOfSpeech):
            if not self._ending and (decision := self._turn_taking.provider_end_of_speech()) is not None:
                self._decide(decision)
        elif isinstance(event, FallbackUsed):
            self._fallback_used(event)
        elif isinstance(event, EarlyTextReady):
            self._early_text_ready(event.task)

    # -- limits ------------------------------------------------------------------------------------
    def _quiet(self) -> bool:
        """Nobody is talking and no reply is on its way."""
        return not self._turn_taking.caller_speaking and not self._pacer.busy and not self._live

    async def _watch(self) -> None:
        """Ends the call politely at the duration limit, after a silent caller, or when draining."""
        while not self._ending:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = self._clock()
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
                    self.log.info(
                        "caller silent for %.0f s: asking if they are still there", self._limits.silence_timeout_s
                    )
                    self._say([(self._agent.still_there, None)])

    async def _end_politely(self, reason: str) -> None:
        """Say goodbye, wait until it has been heard, then end the call."""
        self._ending = True
        self.log.info("ending the call: %s", reason)
        self.record.event("ended-by-server", reason=reason)
        self.record.outcome = reason
        self._interrupt(EndReason.SERVER)
        await self._heard(self._say([(self._agent.goodbye, None)]))
        await self._hang_up()

    async def _heard(self, reply: Reply, wait_s: float = GOODBYE_WAIT_S) -> bool:
        """Waits (at most ``wait_s``) until ``reply`` ends; whether it was heard in full (DONE:
        every piece's mark came back)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                return await reply.wait() is ReplyState.DONE
        return False

    async def _hang_up(self) -> None:
        try:
            await self._control.hang_up()
        except CallControlUnavailable as exc:
            self.log.warning("could not hang up: %s", exc)
            return
        self.record.event("hung-up")

    async def _transfer_once_heard(self, handoff: Reply) -> None:
        """Once the hand-off phrase is heard, the call goes to the person in the agent file (over
        Twilio's REST API: the stream then ends, and what happens next is reported to
        ``/voice/transfer-status``). If that cannot be done, the agent says so and the call goes on."""
        if not await self._heard(handoff) or self._ending:
            return
        to = self._agent.transfer.number
        self._ending = True
        try:
            await self._control.transfer(to)
        except CallControlUnavailable as exc:
            self._ending = False
            self.log.warning("could not transfer the call: %s", exc)
            self.record.event("transfer", to=to, outcome="unavailable", message=str(exc)[:200])
            self._say([(self._agent.transfer.unavailable, None)], remember=True)
            return
        self.log.info("the call was handed over to %s", Private(to))
        self.record.outcome = "transferred"
        self.record.event("transfer", to=to, outcome="dialling")

    async def _hang_up_once_heard(self, goodbye: Reply) -> None:
        """The caller said goodbye and the agent answered with its own: once that is heard (its
        mark echoed), the call ends; if the caller spoke over it, the call goes on."""
        if await self._heard(goodbye) and not self._ending:
            self._ending = True
            self.log.info("ending the call: the caller said goodbye")
            await self._hang_up()

    # -- outbound calls: who answered -------------------------------------------------------------
    def on_answered_by(self, answer: str) -> None:
        """Twilio's answering-machine detection: ``human``, ``machine_end_beep``, ``fax``…"""
        self._answered_by = answer
        self._answer_known.set()

    async def _await_answer(self) -> None:
        """A call the agent placed: silent until Twilio says who answered. A person (or nobody can
        tell) hears the greeting; an answering machine, once its greeting ended, the voicemail
        message, and then the call ends."""
        settings = self._agent.outbound
        deadline = self._clock() + settings.detection_timeout_s + ANSWER_MARGIN_S
        answer = ""
        while not answer or answer == "machine_start":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await self._answer_known.wait()
            if not self._answer_known.is_set():
                answer = answer or "unknown"  # Twilio never said: whoever it is hears the greeting
                break
            self._answer_known.clear()
            answer = self._answered_by
            if answer == "machine_start":
                deadline = self._clock() + MACHINE_GREETING_S
        self._awaiting_answer = False
        self.log.info("answered by %s", answer)
        if answer in MACHINE_ENDS or answer == "machine_start":
            self._ending = True
            self.record.outcome = "voicemail"
            self.record.event("voicemail")
            heard = await self._heard(self._say([(settings.voicemail, None)]), VOICEMAIL_WAIT_S)
            self.log.info("voicemail message left%s", "" if heard else " (not all of it was heard)")
            await self._hang_up()
        elif answer == "fax":
            self._ending = True
            self.record.outcome = "fax"
            await self._hang_up()
        else:
            self._greet(settings.greeting)

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
        decision = self._turn_taking.hear(frame)
        if decision is not None:
            self._decide(decision)
        elif self._turn_taking.caller_speaking:
            self._maybe_prefill()

    def on_mark(self, name: str) -> None:
        for piece in self._pacer.on_mark(name):
            reply = self._live.get(piece.turn)
            if reply is None:
                continue
            if reply.timeline is not None:
                reply.timeline.mark("first_mark_echoed", piece.played_at)
            speech = reply.speeches[piece.speech]
            if speech.all_played:
                speech._settle(True)
            self._maybe_done(reply)
        self._agent_state()

    def on_dtmf(self, digit: str) -> None:
        self.log.info("DTMF %s", Private(digit))
        self.record.event("dtmf", digit=digit)
        if self._ending:
            return
        outcome = self._keypad.press(digit, self._clock())
        if outcome is None and self._keypad.deadline is None:
            return  # an end key with nothing typed before it (e.g. after an entry of the most digits)
        self._still_there_asked = False
        self._interrupt(EndReason.KEY)  # a key stops the agent, as it stops a recorded menu
        self._keypad_outcome(outcome)
        if self._keypad.deadline is not None and (self._keypad_timer is None or self._keypad_timer.done()):
            self._keypad_timer = self._spawn(self._keypad_expiry(), "keypad")

    async def _keypad_expiry(self) -> None:
        """Ends an entry the caller stopped typing without the end key."""
        while (deadline := self._keypad.deadline) is not None:
            await asyncio.sleep(max(0.0, deadline - self._clock()))
            if not self._ending:
                self._keypad_outcome(self._keypad.expire(self._clock()))

    def _keypad_outcome(self, outcome: KeypadOutcome | None) -> None:
        if isinstance(outcome, LanguageKey):
            self._choose_language(outcome.language, "keypad")
        elif isinstance(outcome, Entry):
            self.log.info("keypad entry %s (%s)", Private(outcome.digits), outcome.name or "keys")
            self.record.event("keypad", digits=outcome.digits, name=outcome.name, valid=outcome.valid)
            if outcome.valid:
                self.caller_typed(outcome.text)
            else:
                self._say([(outcome.text, None)])

    def caller_typed(self, text: str) -> None:
        """Words the caller gave without speaking them (keys, or typed on the softphone): a turn
        like a spoken one, without the STT."""
        if self._ending:
            return
        self._interrupt(EndReason.KEY)
        self._listener.chosen = True
        now = self._clock()
        self._turns += 1
        timeline = TurnTimeline(turn=self._turns, speech_end=now, turn_detected=now)
        timeline.mark("stt_final", now)
        reply = Reply(turn=self._turns, kind=ReplyKind.ANSWER, timeline=timeline)
        reply.caller_text = self._book.with_unanswered(text)
        self.record.set_transcribed(reply.turn, reply.caller_text)
        self._begin(reply, self._respond(reply))

    def _decide(self, decision: TurnDecision) -> None:
        if isinstance(decision, (CallerStarted, Interruption)):
            self._still_there_asked = False
            self._prefilled_at_frame = 0
            self.log.info("speech started (confidence %.2f)", decision.confidence)
            if isinstance(decision, Interruption):
                if decision.tentative:
                    self._pause()
                else:
                    self._interrupt(EndReason.CALLER)
        elif isinstance(decision, InterruptionConfirmed):
            self.log.info("interruption confirmed (%d ms of speech over the agent)", decision.voiced_ms)
            self._interrupt(EndReason.CALLER)
        elif isinstance(decision, CallerPaused):
            self.log.info("processing %d bytes (early, the caller paused)", decision.audio.size * 2)
            self._drop_early()
            self._early = self._spawn_early(decision.audio)
        elif isinstance(decision, CallerResumed):
            self._drop_early()
        elif isinstance(decision, NoiseIgnored):
            self.log.info("speech ended (%d ms voiced): ignored, too short to be speech", decision.voiced_ms)
            self._drop_early()
            self._listener.reset()
            if (paused := self._paused_reply()) is not None:
                self._resume(paused, OverlapKind.NOISE, "")
        elif isinstance(decision, TurnEnded):
            if decision.overlap:
                self._judge_overlap(self._paused_reply(), decision)
            else:
                self._on_turn_ended(decision)

    def _spawn_early(self, audio: np.ndarray) -> EarlyText | None:
        """Early transcription: its result (text or the provider's error) is the turn's to take,
        and the turn-taking policy's to judge as soon as it is back."""
        if self._group is None:
            return None
        task = self._task(self._listener.early(audio), "early-stt")
        task.add_done_callback(self._inbox.early_text_ready)
        return task

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None
        self._drop_speculative()

    def _early_text_ready(self, task: EarlyText) -> None:
        """The words up to the pause are known: they may end the turn now, or start its reply."""
        if task is not self._early or task.cancelled() or self._ending:
            return
        result = task.result()
        text = result if isinstance(result, str) else None  # a failure: the turn, when it ends, takes it
        decision = self._turn_taking.transcript(text)
        ending = self._turn_taking.ending()
        self.log.info("early transcript (%s): %r", ending or "-", Private(text))
        if decision is not None:
            self._decide(decision)
        elif text and ending not in (Ending.INCOMPLETE, Ending.EMPTY):
            self._speculate(text)

    # -- speculation: the reply starts at the pause ---------------------------------------------------
    def _speculate(self, text: str) -> None:
        """Start answering ``text`` before the turn is confirmed; its audio is withheld until then."""
        if (
            not self._agent.turns.speculate
            or self._speculative is not None
            or self._live
            or not self._listener.chosen
            or not self._turn_taking.in_pause
        ):
            return
        now = self._clock()
        timeline = TurnTimeline(turn=0, speech_end=now - self._turn_taking.pause_s, turn_detected=now, stt_early=True)
        timeline.mark("stt_final", now)
        reply = Reply(turn=0, kind=ReplyKind.ANSWER, timeline=timeline, speculative=True)
        reply.caller_text = self._book.with_unanswered(text)
        self._speculative = reply
        self.log.info("speculative reply started at the pause")
        reply.task = self._spawn(self._reply_work(reply, self._respond(reply)), "turn")  # its number comes later

    def _drop_speculative(self) -> None:
        reply, self._speculative = self._speculative, None
        if reply is None:
            return
        if reply.task is not None:
            reply.task.cancel()
        self.log.info("speculative reply dropped: the caller went on")
        if self._metrics:
            self._metrics.speculative_replies.labels("dropped").inc()

    def _adopt(self, reply: Reply, ended: TurnEnded) -> None:
        """The turn ended as the speculative reply assumed: it becomes the turn's reply."""
        self._speculative = None
        now = self._clock()
        self._turns += 1
        reply.turn = self._turns
        reply.speculative = False
        assert reply.timeline is not None
        reply.timeline.turn = reply.turn
        reply.timeline.speech_end = now - ended.silence_s
        reply.timeline.turn_detected = now
        self._reply = reply
        self._live[reply.turn] = reply
        self._listener.reset()
        if reply.caller_text:
            self.record.set_transcribed(reply.turn, reply.caller_text)
        withheld, reply.withheld = reply.withheld, []
        for piece in withheld:
            piece.turn = reply.turn
            self._pacer.enqueue(piece)
        if self._metrics:
            self._metrics.speculative_replies.labels("used").inc()
        self.log.info("speculative reply used for turn %d (%d pieces ready)", reply.turn, len(withheld))
        self._agent_state()
        if reply.state is ReplyState.PLAYING:
            self._maybe_done(reply)

    # -- speech over the agent: pause, then resume or give way ----------------------------------------
    def _paused_reply(self) -> Reply | None:
        reply = self._reply
        return reply if reply is not None and reply.paused and not reply.ended else None

    def _pause(self) -> None:
        """The caller started speaking over the agent: stop its audio now (a real interruption is
        heard to stop at once), keeping the unheard rest in case it was only a backchannel."""
        reply = self._reply
        if reply is None or reply.ended or reply.paused:
            return
        reply.paused = True
        cut = self._pacer.cut()
        if cut:
            self._echo.cleared()
            self._spawn(self._pacer.clear_line(), "clear")
            reply.cleared = True
            reply.withheld = reply.keep_unheard(cut, self._clock()) + reply.withheld
        self.log.info("reply %d paused: the caller spoke over it", reply.turn)
        self._agent_state()

    def _resume(self, reply: Reply, kind: OverlapKind, text: str) -> None:
        """It was not an interruption: the agent goes on from where the caller stopped hearing it."""
        reply.paused = False
        withheld, reply.withheld = reply.withheld, []
        for piece in withheld:
            self._pacer.enqueue(piece)
        self.log.info("reply %d resumed after a %s %r", reply.turn, kind, Private(text))
        self.record.event(str(kind), turn=reply.turn, text=text[:80])
        if self._metrics:
            self._metrics.overlaps.labels(str(kind)).inc()
        self._agent_state()
        if reply.state is ReplyState.PLAYING:
            self._maybe_done(reply)

    def _judge_overlap(self, paused: Reply | None, ended: TurnEnded) -> None:
        """A short utterance over the agent ended: its words say whether it takes the turn."""
        early, self._early = self._early, None
        self._spawn(self._judge_words(paused, ended, early), "overlap")

    async def _judge_words(self, paused: Reply | None, ended: TurnEnded, early: EarlyText | None) -> None:
        try:
            text = await self._listener.final(ended.audio, early, ended.by_provider)
        except ProviderError as exc:
            self.log.warning("could not transcribe speech over the agent (%s): taken for no words", exc)
            text = ""
        kind = classify_overlap(text, self._agent.turns.backchannels)
        if paused is not None and (paused.ended or not paused.paused):
            paused = None  # ended meanwhile (the server, a key, the caller hanging up)
        if kind is not OverlapKind.SPEECH:
            if paused is not None and not self._turn_taking.caller_speaking:
                self._resume(paused, kind, text)
            elif paused is None:
                self.log.info("ignored a %s over the agent: %r", kind, Private(text))
                self.record.event(str(kind), text=text[:80])
            return  # (the caller went on: the next utterance decides)
        if paused is not None:
            self._interrupt(EndReason.CALLER)
        if self._turn_taking.caller_speaking:  # the caller went on: these words join the next turn
            self._book.unanswered = self._book.with_unanswered(text)
            return
        self._on_turn_ended(ended, known_text=text)

    def _maybe_prefill(self) -> None:
        """Every ``prefill_every_ms`` of speech, transcribe it so far and let the LLM read it early."""
        every = self._agent.llm.prefill_every_ms // FRAME_MS
        frames = self._turn_taking.utterance_frames
        if (
            not self._stack.llm.prefills_locally
            or not every
            or frames - self._prefilled_at_frame < every
            or self._turn_taking.in_pause
        ):
            return  # in a pause the early transcription is about to need the STT
        if self._prefill is not None and not self._prefill.done():
            return
        if self._live:
            return  # the LLM is busy with a reply (or about to be cancelled by a barge-in)
        self._prefilled_at_frame = frames
        self._prefill = self._spawn(self._prefill_partial(self._turn_taking.utterance_audio()), "prefill")

    async def _prefill_partial(self, audio: np.ndarray) -> None:
        partial = await self._listener.partial(audio)
        if partial and self._turn_taking.caller_speaking:
            await self._stack.llm.prefill(self._prompt(self._book.with_unanswered(partial)))

    def _on_turn_ended(self, ended: TurnEnded, known_text: str | None = None) -> None:
        if self._awaiting_answer:  # "Hello?" from whoever picked up: the greeting answers it
            self.log.info("speech before the call was known to be answered by a person: not answered")
            self._drop_early()
            self._listener.reset()
            return
        now = self._clock()
        self.log.info(
            "speech ended (%.0f ms silence, %d ms voiced%s)",
            ended.silence_s * 1000,
            ended.voiced_ms,
            ", end reported by the STT provider" if ended.by_provider else "",
        )
        self._keypad.caller_spoke()
        early, self._early = self._early, None
        speculative, self._speculative = self._speculative, None
        if speculative is not None and known_text is None and not speculative.ended:
            self._adopt(speculative, ended)
            return
        if speculative is not None and speculative.task is not None:
            speculative.task.cancel()  # not the reply to these words: no LLM work for nothing
        self._turns += 1
        timeline = TurnTimeline(
            turn=self._turns, speech_end=now - ended.silence_s, turn_detected=now, stt_early=early is not None
        )
        reply = Reply(turn=self._turns, kind=ReplyKind.ANSWER, timeline=timeline, state=ReplyState.TRANSCRIBING)
        self._begin(reply, self._answer(reply, ended, early, known_text))

    # -- replies ---------------------------------------------------------------------------------
    def _begin(self, reply: Reply, work: Coroutine[object, object, None]) -> Reply:
        self._reply = reply
        self._live[reply.turn] = reply
        reply.task = self._spawn(self._reply_work(reply, work), f"turn-{reply.turn}")
        self._agent_state()
        return reply

    async def _reply_work(self, reply: Reply, work: Coroutine[object, object, None]) -> None:
        """A reply's work; if a bug stops it, the reply ends there (and the call goes on)."""
        try:
            await work
        except Exception:
            reply.failed = True
            if not reply.ended:
                if self._pacer.cut():
                    self._spawn(self._pacer.clear_line(), "clear")
                self._settle(reply, ReplyState.INTERRUPTED if reply.audible else ReplyState.DISCARDED, EndReason.ERROR)
            raise  # logged and counted by _supervised

    def _greet(self, text: str = "") -> None:
        phrases: list[tuple[str, str | None]] = [(text or self._agent.greeting, None)]
        if not self._listener.chosen:
            phrases += [(lang.prompt, code) for code, lang in self._agent.languages.items() if lang.prompt]
        greeting = Reply(turn=0, kind=ReplyKind.GREETING, remember=True)
        self._begin(greeting, self._speak_fixed(greeting, phrases))

    def _say(self, phrases: list[tuple[str, str | None]], remember: bool = False) -> Reply:
        """A turn the agent starts itself: fixed phrases, each in its language's voice."""
        self._turns += 1
        reply = Reply(turn=self._turns, kind=ReplyKind.PROMPT, remember=remember)
        return self._begin(reply, self._speak_fixed(reply, phrases))

    async def _speak_fixed(self, reply: Reply, phrases: list[tuple[str, str | None]]) -> None:
        speech = reply.open_speech()
        reply.generated = " ".join(text for text, _ in phrases)
        await self._responder.say(phrases, _ReplyOutput(self, reply, speech))
        self._generated(reply, speech)

    async def _answer(self, reply: Reply, ended: TurnEnded, early: EarlyText | None, known: str | None) -> None:
        timeline = reply.timeline
        assert timeline is not None
        try:
            text = known if known is not None else await self._listener.final(ended.audio, early, ended.by_provider)
        except ProviderError as exc:
            self.provider_failed(reply, "stt", exc)
            reply.advance(ReplyState.GENERATING)
            speech = reply.open_speech()
            await self._responder.apologise(_ReplyOutput(self, reply, speech))
            self._generated(reply, speech)
            return
        heard_at = self._clock()
        timeline.mark("stt_final", heard_at)
        self.log.info(
            "STT result (%s, %.0f ms after end of speech): %r",
            "early" if early is not None else "final",
            (heard_at - timeline.speech_end) * 1000,
            text,
        )
        reply.caller_text = self._book.with_unanswered(text)
        if text:
            self.record.set_transcribed(reply.turn, reply.caller_text)
        if reply.stop_after_transcript is not None:
            self._settle(reply, ReplyState.DISCARDED, reply.stop_after_transcript)
            return
        if not self._listener.chosen:
            self._listener.chosen = True  # the first thing the caller says settles it, named or not
            if (code := self._language_named_in(text)) is not None:
                reply.advance(ReplyState.GENERATING)
                self._chose(code, "speech")
                await self._speak_fixed(reply, [(self._agent.languages[code].confirmation, code)])
                return
        if not text:
            self.log.info("no words recognised; ready for next input")
            self._settle(reply, ReplyState.DISCARDED, EndReason.NO_WORDS)
            return
        reply.advance(ReplyState.GENERATING)
        await self._respond(reply)

    async def _respond(self, reply: Reply) -> None:
        """The LLM's answer to ``reply.caller_text``, spoken clause by clause (to a goodbye, the
        agent's own goodbye, and then the call ends)."""
        assert reply.timeline is not None
        if is_farewell(reply.caller_text):
            self.log.info("the caller said goodbye")
            await self._speak_fixed(reply, [(self._agent.goodbye, None)])
            self._spawn(self._hang_up_once_heard(reply), "hang-up")
            return
        if self._agent.transfer.number and wants_a_person(reply.caller_text):
            self.log.info("the caller asked for a person")
            await self._speak_fixed(reply, [(self._agent.transfer.phrase, None)])
            self._spawn(self._transfer_once_heard(reply), "transfer")
            return
        language = self._listener.stt_language()
        if (known := known_answer(self._schedule, self._facts, language, reply.caller_text)) is not None:
            self.log.info("answered from the agent's facts")
            await self._speak_fixed(reply, [(known, None)])
            return
        messages = self._prompt(reply.caller_text)
        self.log.info("LLM streaming (%d messages)", len(messages))
        speech = reply.open_speech()
        await self._responder.answer(messages, self._voice(), _ReplyOutput(self, reply, speech), self._tools)
        self.log.info(
            "reply generated in %.0f ms: %r", (self._clock() - reply.timeline.turn_detected) * 1000, reply.generated
        )
        self._generated(reply, speech)

    async def use_tool(self, reply: Reply, call: ToolCall) -> ToolOutcome:
        """A tool the reply's LLM asked for; one that acts on the call (ending it, handing it
        over) does so once the reply has been heard."""
        actions = CallActions(
            end=lambda: self._spawn(self._hang_up_once_heard(reply), "hang-up"),
            transfer=lambda: self._spawn(self._transfer_once_heard(reply), "transfer"),
        )
        return await self._tool_user.use(reply.turn, call, actions)

    def queue_piece(self, reply: Reply, speech: Speech, text: str, audio: bytes) -> None:
        if reply.ended or not audio:
            return
        piece = Piece(turn=reply.turn, index=len(reply.pieces), text=text, audio=audio, speech=speech.index)
        speech.pieces.append(piece)
        if reply.paused or reply.speculative:
            reply.withheld.append(piece)
            return
        self._pacer.enqueue(piece)
        self._agent_state()

    def _generated(self, reply: Reply, speech: Speech) -> None:
        """Everything the reply will say is queued: it plays out, and ends when heard."""
        speech.closed = True
        self._keypad.agent_said(reply.generated)  # a number it asked for is typed next
        if reply.ended:
            return
        if reply.state is not ReplyState.PLAYING:
            reply.advance(ReplyState.PLAYING)
        if speech.all_played:
            speech._settle(True)
        self._maybe_done(reply)

    def _maybe_done(self, reply: Reply) -> None:
        if not reply.ended and not reply.speculative and not reply.paused and reply.all_heard():
            self._settle(reply, ReplyState.DONE)

    def _interrupt(self, reason: EndReason) -> None:
        """Stop the reply the caller would hear: cancel its work, clear the line, settle it."""
        reply = self._reply
        if reply is None or reply.ended:
            return
        if reply.state is ReplyState.TRANSCRIBING:
            # Let the transcription finish so the caller's words are kept for the next turn.
            reply.stop_after_transcript = reason
            self.log.info("reply %d will not be generated (%s)", reply.turn, reason)
            return
        if reply.task is not None:
            reply.task.cancel()
        cut = self._pacer.cut()
        if cut:
            self._echo.cleared()
            self._spawn(self._pacer.clear_line(), "clear")
        elif not reply.audible:
            self.log.info("reply %d cancelled before any audio (%s)", reply.turn, reason)
        self._settle(
            reply,
            ReplyState.INTERRUPTED if reply.audible else ReplyState.DISCARDED,
            reason,
            cleared=bool(cut) or reply.cleared,
        )

    def _settle(self, reply: Reply, state: ReplyState, reason: EndReason | None = None, cleared: bool = False) -> None:
        self._book.settle(reply, state, reason, cleared)
        self._live.pop(reply.turn, None)
        self._agent_state()

    def _agent_state(self) -> None:
        self._turn_taking.agent_state(replying=bool(self._live), playing=self._pacer.busy)

    def provider_failed(self, reply: Reply, stage: Stage, exc: ProviderError) -> None:
        self.log.error("%s failed: %s", stage.upper(), exc)
        self.record.event("error", stage=stage, provider=exc.provider, error_kind=exc.kind, message=str(exc))
        if self._metrics:
            self._metrics.provider_errors.labels(exc.provider, exc.kind).inc()
        reply.failed = True

    def _fallback_used(self, event: FallbackUsed) -> None:
        exc = event.error
        self.log.warning("%s failed (%s): this turn uses %s", event.stage.upper(), exc, event.fallback)
        self.record.event(
            "fallback",
            stage=event.stage,
            provider=exc.provider,
            error_kind=exc.kind,
            fallback=event.fallback,
            message=str(exc),
        )
        if self._metrics:
            self._metrics.provider_errors.labels(exc.provider, exc.kind).inc()

    # -- languages ---------------------------------------------------------------------------------
    def _voice(self) -> str | None:
        return self._listener.language if self._agent.languages else None

    def _language_named_in(self, text: str) -> str | None:
        folded = text.casefold()
        for code, language in self._agent.languages.items():
            if any(keyword.casefold() in folded for keyword in language.keywords):
                return code
        return None

    def _chose(self, code: str, how: str) -> None:
        replaced = self._listener.choose(code)
        if replaced is not None:
            self._spawn(replaced.close(), "stt-close")
        self.log.info("language: %s (%s)", self._agent.languages[code].name, how)
        self.record.event("language", language=code, by=how)

    def _choose_language(self, code: str, how: str) -> None:
        self._chose(code, how)
        self._say([(self._agent.languages[code].confirmation, code)], remember=True)

    def _prompt(self, caller_text: str) -> list[ChatMessage]:
        language = self._agent.languages.get(self._listener.language)
        return build_prompt(self._agent, self._book.history, caller_text, language.instruction if language else "")


def _no_lateness(_lateness_s: float) -> None:
    pass
