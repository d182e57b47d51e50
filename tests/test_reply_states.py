"""Replies, speeches and the turn-taking policy on their own (``pytest -m unit``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from scripted import LevelVad, on_fake_time, tone
from voxline.audio import mulaw
from voxline.config import VadSettings
from voxline.playout.pacer import Piece
from voxline.session.records import CallRecord
from voxline.session.speech import EndReason, InvalidTransition, Reply, ReplyKind, ReplyState
from voxline.session.turnbook import TurnBook
from voxline.turns.policy import CallerStarted, Interruption, NoiseIgnored, SilenceTurnTaking, TurnEnded

pytestmark = pytest.mark.unit


def book() -> tuple[TurnBook, CallRecord]:
    record = CallRecord(call_sid="CA1", stream_sid="MZ1", agent="test")
    return TurnBook(
        record, None, logging.LoggerAdapter(logging.getLogger("test"), {}), lambda: "en", lambda: 0.0
    ), record


def piece(reply: Reply, speech: int, text: str) -> Piece:
    p = Piece(turn=reply.turn, index=len(reply.pieces), text=text, audio=b"\x10" * 800, speech=speech)
    reply.speeches[speech].pieces.append(p)
    return p


def test_a_reply_moves_forward_only_and_ends_only_through_the_book():
    async def scenario():
        reply = Reply(turn=1, kind=ReplyKind.ANSWER, state=ReplyState.TRANSCRIBING)
        with pytest.raises(InvalidTransition):
            reply.advance(ReplyState.PLAYING)  # transcribing → playing skips generating
        with pytest.raises(InvalidTransition):
            reply.advance(ReplyState.DONE)  # ending is the book's
        reply.advance(ReplyState.GENERATING)
        reply.advance(ReplyState.PLAYING)
        with pytest.raises(InvalidTransition):
            reply.advance(ReplyState.GENERATING)
        turns, record = book()
        turns.settle(reply, ReplyState.DONE)
        turns.settle(reply, ReplyState.INTERRUPTED, EndReason.CALLER)  # a second end changes nothing
        assert reply.state is ReplyState.DONE and reply.reason is None
        assert [t.outcome for t in record.turns] == ["done"]

    on_fake_time(scenario)


def test_a_filler_then_the_answer_two_speeches_in_one_turn():
    async def scenario():
        reply = Reply(turn=3, kind=ReplyKind.ANSWER, caller_text="is the doctor in", state=ReplyState.GENERATING)
        filler, answer = reply.open_speech(), reply.open_speech()
        one = piece(reply, 0, "Let me check.")
        filler.closed = True
        two = piece(reply, 1, "Yes, she is in today.")
        answer.closed = True
        reply.advance(ReplyState.PLAYING)
        one.played_at = 1.0
        one.heard_fraction = 1.0
        assert filler.all_played and not reply.all_heard()
        two.played_at = 2.0
        two.heard_fraction = 1.0
        assert reply.all_heard()
        turns, record = book()
        turns.settle(reply, ReplyState.DONE)
        assert await filler.heard() and await answer.heard()
        assert record.turns[0].heard_text == "Let me check. Yes, she is in today."
        assert turns.history[-1] == {"role": "assistant", "content": "Let me check. Yes, she is in today."}

    on_fake_time(scenario)


def test_a_reply_cut_short_keeps_the_heard_words_and_says_why():
    async def scenario():
        reply = Reply(turn=2, kind=ReplyKind.ANSWER, caller_text="what are your hours", state=ReplyState.GENERATING)
        speech = reply.open_speech()
        cut = piece(reply, 0, "We open at ten and close at six")
        cut.first_frame_at, cut.heard_fraction = 0.5, 0.5
        turns, record = book()
        turns.settle(reply, ReplyState.INTERRUPTED, EndReason.TRANSFER, cleared=True)
        assert await speech.heard() is False and await reply.wait() is ReplyState.INTERRUPTED
        assert record.turns[0].heard_text == "We open at ten" and record.turns[0].end_reason == "transfer"
        assert [e["kind"] for e in record.events] == ["interrupted"] and record.events[0]["reason"] == "transfer"

    on_fake_time(scenario)


def test_unheard_answers_leave_the_callers_words_for_the_next_turn():
    async def scenario():
        turns, _ = book()
        reply = Reply(
            turn=1, kind=ReplyKind.ANSWER, caller_text="my number is four one five", state=ReplyState.GENERATING
        )
        turns.settle(reply, ReplyState.DISCARDED, EndReason.CALLER)
        assert turns.unanswered == "my number is four one five" and turns.history == []
        assert turns.with_unanswered("five five five") == "my number is four one five five five five"

    on_fake_time(scenario)


def frames(amplitude: int, seconds: float) -> list[np.ndarray]:
    return [mulaw.decode(f) for f in tone(amplitude, seconds)]


def decisions(policy: SilenceTurnTaking, audio: list[np.ndarray]) -> list[object]:
    return [d for d in (policy.hear(f) for f in audio) if d is not None]


def test_the_policy_ends_a_turn_after_the_silence_window():
    policy = SilenceTurnTaking(LevelVad(), VadSettings())
    got = decisions(policy, frames(3000, 1.0) + frames(0, 0.4))
    kinds = [type(d).__name__ for d in got]
    assert kinds == ["CallerStarted", "CallerPaused", "TurnEnded"]
    ended = got[-1]
    assert isinstance(ended, TurnEnded) and ended.silence_s == pytest.approx(0.3) and not ended.by_provider


def test_speech_over_the_agent_is_an_interruption_and_is_caught_sooner():
    quiet, talking = SilenceTurnTaking(LevelVad(), VadSettings()), SilenceTurnTaking(LevelVad(), VadSettings())
    talking.agent_state(replying=True, playing=True)
    audio = frames(3000, 0.5)
    first_quiet = next(i for i, f in enumerate(audio) if quiet.hear(f) is not None)
    started = next((i, d) for i, f in enumerate(audio) if (d := talking.hear(f)) is not None)
    assert isinstance(started[1], Interruption)
    assert started[0] < first_quiet and started[0] * 20 <= 120  # 20 % of the 600 ms window
    assert isinstance(decisions(SilenceTurnTaking(LevelVad(), VadSettings()), audio)[0], CallerStarted)


def test_a_short_noise_is_ignored_and_a_provider_endpoint_ends_the_turn_in_a_pause():
    policy = SilenceTurnTaking(LevelVad(), VadSettings())
    policy.agent_state(replying=True, playing=True)  # over the agent's voice speech starts after 120 ms
    got = decisions(policy, frames(3000, 0.14) + frames(0, 0.4))
    assert isinstance(got[0], Interruption) and isinstance(got[-1], NoiseIgnored) and got[-1].voiced_ms < 200
    policy = SilenceTurnTaking(LevelVad(), VadSettings())
    decisions(policy, frames(3000, 1.0))
    assert policy.provider_end_of_speech() is None  # the caller is still speaking
    decisions(policy, frames(0, 0.06))
    ended = policy.provider_end_of_speech()
    assert isinstance(ended, TurnEnded) and ended.by_provider and ended.silence_s == pytest.approx(0.06)
