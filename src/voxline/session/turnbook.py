"""The one place a reply ends: its turn recorded, the conversation kept, the metrics counted.

Ending a reply decides what the LLM will remember (only what the caller heard; words whose
answer was never heard are carried into the next turn), what the call record says (every turn
index the call used, with how it ended and why), which events are logged (a barge-in only when
the caller's voice stopped audio that was playing), and what Prometheus and the tracer see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from voxline.llm.base import ChatMessage
from voxline.observability.metrics import Metrics
from voxline.observability.tracing import wall_clock_of
from voxline.session.records import CallRecord
from voxline.session.speech import EndReason, Reply, ReplyKind, ReplyState
from voxline.session.timeline import TurnRecord


class TurnBook:
    def __init__(
        self,
        record: CallRecord,
        metrics: Metrics | None,
        log: logging.LoggerAdapter,
        language: Callable[[], str],
        clock: Callable[[], float],
    ) -> None:
        self.history: list[ChatMessage] = []
        self.unanswered = ""  # caller words whose reply was never heard: merged into the next turn
        self._record = record
        self._metrics = metrics
        self._log = log
        self._language = language
        self._clock = clock

    def with_unanswered(self, text: str) -> str:
        return " ".join(t for t in (self.unanswered, text) if t)

    def settle(self, reply: Reply, state: ReplyState, reason: EndReason | None = None, cleared: bool = False) -> None:
        """End ``reply`` (once). ``cleared``: its audio was on the line and was just cleared."""
        if reply.ended:
            return
        reply._end(state, reason)
        reply.task = None  # what it was running is over (or being cancelled by whoever ended it)
        heard = reply.heard_text()
        self._remember(reply, heard)
        if cleared:
            self._interrupted(reply, reason)
        if reply.turn > 0:
            self._record_turn(reply, heard)
        self._log.info("turn %d %s%s; ready for next input", reply.turn, state, f" ({reason})" if reason else "")

    def _remember(self, reply: Reply, heard: str) -> None:
        if reply.kind is not ReplyKind.ANSWER or not reply.caller_text:
            if reply.remember and heard:
                self.history.append({"role": "assistant", "content": heard})
            return
        if heard:
            self.history += [{"role": "user", "content": reply.caller_text}, {"role": "assistant", "content": heard}]
            self.unanswered = ""
        else:
            self.unanswered = reply.caller_text

    def _interrupted(self, reply: Reply, reason: EndReason | None) -> None:
        if reason is EndReason.CALLER:
            self._log.info("barge-in: cleared the agent's audio (turn %d)", reply.turn)
            self._record.event("barge-in", turn=reply.turn)
            if self._metrics:
                self._metrics.barge_ins.inc()
            return
        why = str(reason or "unknown")
        self._log.info("the agent's audio was cleared (turn %d): %s", reply.turn, why)
        self._record.event("interrupted", turn=reply.turn, reason=why)
        if self._metrics:
            self._metrics.interruptions.labels(why).inc()

    def _record_turn(self, reply: Reply, heard: str) -> None:
        interrupted = reply.state is not ReplyState.DONE and reply.reason is not EndReason.NO_WORDS
        timeline = reply.timeline
        stages = timeline.offsets_ms() if timeline is not None else {}
        if timeline is not None:
            timeline.completed = self._clock()
            started_at = wall_clock_of(timeline.speech_end)  # one timestamp for the record and the trace
        else:
            started_at = None
        self._record.add_turn(
            TurnRecord(
                index=reply.turn,
                caller_text=reply.caller_text,
                agent_text=reply.generated,
                heard_text=heard,
                interrupted=interrupted,
                stages_ms=stages,
                stt_early=timeline.stt_early if timeline else False,
                failed=reply.failed,
                language=self._language(),
                outcome=str(reply.state),
                end_reason=str(reply.reason or ""),
                kind=str(reply.kind),
            ),
            started_at=started_at,
        )
        if timeline is None or started_at is None:
            return
        total = (self._clock() - timeline.speech_end) * 1000
        self._log.info("turn %d stages (ms after end of speech): %s", reply.turn, stages)
        self._log.info("total processing time %.0f ms%s", total, " (interrupted)" if interrupted else "")
        if self._metrics is None:
            return
        path = self._record.path
        self._metrics.turn(path, stages, interrupted)
        if stages.get("first_frame_sent") is not None:
            self._metrics.voice_to_voice.labels(path).observe(stages["first_frame_sent"] / 1000)  # type: ignore[operator]
        self._metrics.tracer.turn(
            self._record.call_sid, path, reply.turn, started_at, stages, total, interrupted, reply.failed
        )
