"""The call session on a scripted stack and a simulated far end, on fake time (``pytest -m unit``).

Each test is a whole call: the caller's audio frame by frame, the session's replies through the
pacer, marks echoed when their audio has played. The clock is the event loop's, compacted, so
the timings asserted here are exact, not hoped for.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from scripted import SECONDS_PER_WORD, ScriptedReply, ScriptedSTT, on_fake_time, scripted_call, start_call
from voxline.config import load_agent
from voxline.errors import ProviderError
from voxline.session.call import CallLimits
from voxline.session.speech import EndReason, ReplyState

pytestmark = pytest.mark.unit

OPEN = 3000  # "What time do you open on Saturday?"
PRICE = 6000  # "How much is a cleaning?"
MORE = 9000  # "and do you take cards"
HINDI = 12000  # "Hindi please"
BOOK = 15000  # a statement: the turn waits longer after it than after a question
NUMBER = 18000  # the first digits of a phone number
REST = 21000  # the rest of it
OKAY = 24000  # a backchannel
COUGH = 27000  # no words
TEXTS = {
    OPEN: "What time do you open on Saturday?",
    PRICE: "How much is a cleaning?",
    MORE: "and do you take cards",
    HINDI: "Hindi please",
    BOOK: "I'd like to book a check-up.",
    NUMBER: "My number is four one five",
    REST: "five five five, zero one two three.",
    OKAY: "Okay.",
    COUGH: "",
}

ANSWER = ScriptedReply(["We open ", "at ten ", "on Saturday, ", "and close ", "at two in ", "the afternoon."])
LONG = ScriptedReply(
    "A cleaning costs eighty dollars and a check up costs sixty dollars, and we take every card.".split(" ")
)


def spaced(reply: ScriptedReply) -> ScriptedReply:
    reply.tokens = [t if t.endswith(" ") else t + " " for t in reply.tokens]
    return reply


def test_greeting_is_heard_and_remembered_without_a_turn_record():
    async def scenario():
        async with scripted_call(TEXTS) as call:
            assert call.session._book.history == [{"role": "assistant", "content": call.agent.greeting}]
            assert call.record.turns == []
            assert call.far_end.times("echo"), "the greeting's mark came back"

    on_fake_time(scenario)


def test_a_turn_is_answered_heard_and_recorded_with_every_stage_in_order():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER]) as call:
            spoke_until = await call.say(OPEN, 1.2)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.index == 1 and turn.caller_text == TEXTS[OPEN]
            assert turn.agent_text == "".join(ANSWER.tokens) and turn.heard_text == turn.agent_text
            assert turn.outcome == "done" and turn.end_reason == "" and not turn.interrupted
            stages = turn.stages_ms
            order = [
                "turn_detected",
                "stt_final",
                "llm_first_token",
                "first_audio",
                "first_frame_sent",
                "first_mark_echoed",
            ]
            values = [stages[s] for s in order[1:]]
            assert all(v is not None for v in values) and values == sorted(values)
            assert 390 <= stages["turn_detected"] <= 410  # a question ends after 400 ms of silence
            # Early STT started at the pause (100 ms) and was ready 150 ms later; the reply started
            # then, before the turn was confirmed: LLM 200 ms, the first four words 20 ms, TTS
            # 100 ms, and the first frame went out as soon as its audio was ready.
            assert turn.stt_early and stages["stt_final"] == pytest.approx(250, abs=5)
            assert stages["first_frame_sent"] == pytest.approx(stages["stt_final"] + 320, abs=5)
            first_audio_out = next(t for t in call.far_end.times("audio") if t > spoke_until)
            assert first_audio_out - spoke_until == pytest.approx(stages["first_frame_sent"] / 1000, abs=0.03)
            assert call.session._book.history[-2:] == [
                {"role": "user", "content": TEXTS[OPEN]},
                {"role": "assistant", "content": turn.agent_text},
            ]
            assert call.counter("voxline_voice_to_voice_seconds_count", path="streaming") == 1

    on_fake_time(scenario)


def test_early_transcription_is_used_when_the_caller_stays_silent():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER]) as call:
            await call.say(OPEN)
            await call.quiet()
            assert call.stt.calls == [TEXTS[OPEN]]  # once, at the pause; the end of turn reuses it
            assert call.record.turns[0].stt_early

    on_fake_time(scenario)


def test_the_caller_resuming_during_early_transcription_drops_it():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER], stt_delay_s=0.3) as call:
            await call.say(OPEN, 0.8)
            await call.silence(0.14)  # a pause: early STT starts at 100 ms, then the caller goes on
            await call.say(OPEN, 0.8)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.caller_text == TEXTS[OPEN]
            assert len(call.llm.prompts) == 1  # one answer for the whole utterance
            assert len(call.stt.calls) >= 1

    on_fake_time(scenario)


def test_a_pause_longer_than_the_silence_window_ends_the_turn():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER, spaced(LONG)]) as call:
            await call.say(OPEN, 0.8)
            await call.silence(0.4)
            assert len(call.record.turns) == 0 and call.session._reply.turn == 1
            await call.quiet()
            assert len(call.record.turns) == 1

    on_fake_time(scenario)


def test_barge_in_mid_clause_clears_within_the_detection_time_and_keeps_only_what_was_heard():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)]) as call:
            await call.say(PRICE)
            await call.until_heard(1)
            await call.silence(1.0)  # about four words heard
            onset = call.now()
            await call.say(MORE, 0.5)
            clears = call.far_end.times("clear")
            assert len(clears) == 1
            assert clears[0] - onset <= 0.12  # barge-in threshold: 15 % of 600 ms = 5 frames
            await call.quiet()
            first = call.record.turns[0]
            assert first.interrupted and first.outcome == "interrupted" and first.end_reason == "caller"
            heard = first.heard_text.split()
            assert 2 <= len(heard) <= 7 and heard == first.agent_text.split()[: len(heard)]
            assert call.session._book.history[2] == {"role": "assistant", "content": first.heard_text}
            assert [e["kind"] for e in call.record.events].count("barge-in") == 1
            assert call.counter("voxline_barge_ins_total") == 1
            assert call.llm.cancelled == 1 or len(call.llm.prompts) == 2

    on_fake_time(scenario)


def test_barge_in_before_any_audio_carries_the_words_into_the_next_turn():
    async def scenario():
        slow = ScriptedReply(["A cleaning ", "costs eighty dollars."], first_token_s=1.5)
        async with scripted_call(TEXTS, replies=[slow, ANSWER]) as call:
            await call.say(PRICE)
            await call.silence(0.5)  # turn ended; the LLM has not answered yet
            await call.say(MORE, 1.0)
            await call.quiet()
            first, second = call.record.turns
            assert first.outcome == "discarded" and first.end_reason == "caller" and first.heard_text == ""
            assert second.caller_text == f"{TEXTS[PRICE]} {TEXTS[MORE]}"
            assert call.llm.prompts[-1][-1] == {"role": "user", "content": second.caller_text}
            assert "barge-in" not in [e["kind"] for e in call.record.events]  # nothing was playing

    on_fake_time(scenario)


def test_speaking_during_the_transcription_keeps_the_words_for_the_next_turn():
    async def scenario():
        agent = load_agent(None)
        agent.turns.end_of_turn = "silence"  # a fixed 300 ms: the turn ends before its words are known
        async with scripted_call(TEXTS, replies=[ANSWER], stt_delay_s=0.8, agent=agent) as call:
            await call.say(PRICE)
            await call.silence(0.35)  # the turn ended; transcription takes 0.8 s
            await call.say(MORE, 1.0)
            await call.quiet()
            first, second = call.record.turns
            assert first.outcome == "discarded" and first.caller_text == TEXTS[PRICE]
            assert second.caller_text == f"{TEXTS[PRICE]} {TEXTS[MORE]}" and second.outcome == "done"
            assert len(call.llm.prompts) == 1

    on_fake_time(scenario)


def test_a_turn_with_no_words_is_recorded_and_the_next_index_follows():
    async def scenario():
        async with scripted_call({OPEN: "", PRICE: TEXTS[PRICE]}, replies=[ANSWER]) as call:
            await call.say(OPEN)
            await call.quiet()
            await call.say(PRICE)
            await call.quiet()
            first, second = call.record.turns
            assert (first.index, first.outcome, first.end_reason) == (1, "discarded", "no-words")
            assert not first.interrupted
            assert (second.index, second.outcome) == (2, "done")

    on_fake_time(scenario)


def test_a_sound_too_short_to_be_speech_starts_no_turn():
    async def scenario():
        async with scripted_call(TEXTS) as call:
            await call.say(OPEN, 0.2)  # speech starts when half of 600 ms is voiced
            await call.quiet()
            assert call.record.turns == [] and call.llm.prompts == []

    on_fake_time(scenario)


def test_the_server_ending_a_call_during_a_reply_is_not_a_barge_in_and_hangs_up_after_the_goodbye():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)], limits=CallLimits(max_duration_s=7.0)) as call:
            await call.say(PRICE, 1.0)
            await call.until(lambda: call.control.hung_up_at is not None)
            kinds = [e["kind"] for e in call.record.events]
            assert "barge-in" not in kinds and call.counter("voxline_barge_ins_total") == 0
            assert {"kind": "interrupted", "reason": "server"}.items() <= next(
                e for e in call.record.events if e["kind"] == "interrupted"
            ).items()
            answer, goodbye = call.record.turns
            assert answer.end_reason == "server" and answer.outcome == "interrupted"
            assert goodbye.kind == "prompt" and goodbye.agent_text == call.agent.goodbye and goodbye.outcome == "done"
            assert call.control.hung_up_at >= call.far_end.times("echo")[-1]  # after the goodbye was heard
            assert call.record.outcome == "max-duration"
            assert call.counter("voxline_agent_interrupted_total", reason="server") == 1

    on_fake_time(scenario)


def test_a_silent_caller_is_asked_then_told_goodbye_with_contiguous_turns():
    async def scenario():
        async with scripted_call(TEXTS, limits=CallLimits(silence_timeout_s=3.0)) as call:
            await call.until(lambda: call.control.hung_up_at is not None, timeout_s=20)
            turns = call.record.turns
            assert [t.index for t in turns] == [1, 2]
            assert [t.agent_text for t in turns] == [call.agent.still_there, call.agent.goodbye]
            assert all(t.kind == "prompt" and t.outcome == "done" for t in turns)
            assert call.record.outcome == "caller-silent"
            assert 9.0 <= call.control.hung_up_at <= 14.0  # 3 s silent, still there?, 3 s, goodbye

    on_fake_time(scenario)


def test_draining_ends_the_call_after_the_turn_in_progress():
    async def scenario():
        draining = {"now": False}
        limits = CallLimits(draining=lambda: draining["now"])
        async with scripted_call(TEXTS, replies=[ANSWER], limits=limits) as call:
            await call.say(OPEN)
            await call.silence(0.4)
            draining["now"] = True
            await call.until(lambda: call.control.hung_up_at is not None)
            answer, goodbye = call.record.turns
            assert answer.outcome == "done"  # not cut short
            assert goodbye.agent_text == call.agent.goodbye and call.record.outcome == "server-shutdown"

    on_fake_time(scenario)


def test_hanging_up_waits_for_the_goodbye_mark_not_a_poll():
    async def scenario():
        async with scripted_call(TEXTS, limits=CallLimits(max_duration_s=1.0)) as call:
            await call.until(lambda: call.control.hung_up_at is not None)
            goodbye_marks = [t for t, kind, name in call.far_end.log if kind == "echo"]
            assert call.control.hung_up_at == pytest.approx(goodbye_marks[-1], abs=0.001)

    on_fake_time(scenario)


def test_a_language_key_interrupts_the_greeting_without_a_barge_in():
    async def scenario():
        agent = load_agent(None).model_copy(update={})
        import importlib.resources as resources
        import tomllib

        from voxline.config import AgentConfig

        bilingual = AgentConfig.model_validate(
            tomllib.loads(resources.files("voxline.agents").joinpath("bilingual.toml").read_text(encoding="utf-8"))
        )
        del agent
        call = await start_call(TEXTS, agent=bilingual, greet=False)
        try:
            await call.until(lambda: len(call.far_end.times("audio")) >= 2)
            call.session.on_dtmf("2")
            await call.quiet()
            kinds = [e["kind"] for e in call.record.events]
            assert "barge-in" not in kinds and "interrupted" in kinds
            assert next(e for e in call.record.events if e["kind"] == "interrupted")["reason"] == "key"
            [confirmation] = call.record.turns
            assert confirmation.agent_text == bilingual.languages["hi"].confirmation
            assert confirmation.language == "hi" and confirmation.kind == "prompt"
            assert call.session._book.history[-1]["content"] == bilingual.languages["hi"].confirmation
            assert call.session._book.history[0]["role"] == "assistant"  # what was heard of the greeting
        finally:
            await call.close()

    on_fake_time(scenario)


def test_a_language_named_by_speech_is_one_recorded_turn():
    async def scenario():
        import importlib.resources as resources
        import tomllib

        from voxline.config import AgentConfig

        bilingual = AgentConfig.model_validate(
            tomllib.loads(resources.files("voxline.agents").joinpath("bilingual.toml").read_text(encoding="utf-8"))
        )
        call = await start_call(TEXTS, agent=bilingual, replies=[ANSWER])
        try:
            await call.say(HINDI)
            await call.quiet()
            await call.say(OPEN)
            await call.quiet()
            chosen, answered = call.record.turns
            assert (chosen.index, chosen.caller_text) == (1, TEXTS[HINDI])
            assert chosen.agent_text == bilingual.languages["hi"].confirmation and chosen.outcome == "done"
            assert (answered.index, answered.language) == (2, "hi")
            assert "Hindi" in call.llm.prompts[0][0]["content"]  # the language's instruction
            assert [e["language"] for e in call.record.events if e["kind"] == "language"] == ["hi"]
        finally:
            await call.close()

    on_fake_time(scenario)


def test_stt_failure_without_a_fallback_gets_the_apology_and_the_call_goes_on():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER]) as call:
            call.stt.fail, call.stt.fail_times = ProviderError("scripted-stt", "timeout", "no answer"), 1
            await call.say(OPEN)
            await call.quiet()
            await call.say(PRICE)
            await call.quiet()
            failed, answered = call.record.turns
            assert failed.failed and failed.heard_text == call.agent.apology and failed.outcome == "done"
            assert answered.caller_text == TEXTS[PRICE] and not answered.failed
            errors = [e for e in call.record.events if e["kind"] == "error"]
            assert errors[0]["stage"] == "stt" and errors[0]["provider"] == "scripted-stt"
            assert call.counter("voxline_provider_errors_total", provider="scripted-stt", kind="timeout") == 1

    on_fake_time(scenario)


def test_stt_failure_with_a_fallback_answers_from_the_fallbacks_words():
    async def scenario():
        fallback = ScriptedSTT({OPEN: "when do you open"})
        async with scripted_call(TEXTS, replies=[ANSWER], stt_fallback=fallback) as call:
            call.stt.fail, call.stt.fail_times = ProviderError("scripted-stt", "503", "busy"), 1
            await call.say(OPEN)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.caller_text == "when do you open" and not turn.failed and turn.outcome == "done"
            [event] = [e for e in call.record.events if e["kind"] == "fallback"]
            assert event["stage"] == "stt" and event["fallback"] == "scripted-stt"

    on_fake_time(scenario)


def test_llm_failure_before_the_first_token_gets_the_apology():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ScriptedReply(["Never."], fail_after=0)]) as call:
            await call.say(OPEN)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.failed and turn.heard_text == call.agent.apology
            assert [e["stage"] for e in call.record.events if e["kind"] == "error"] == ["llm"]

    on_fake_time(scenario)


def test_llm_failure_mid_reply_speaks_what_was_generated_then_the_apology():
    async def scenario():
        broken = ScriptedReply(["We open at ten on ", "Saturday morning, ", "and then"], fail_after=2)
        async with scripted_call(TEXTS, replies=[broken]) as call:
            await call.say(OPEN)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.failed
            assert turn.heard_text.startswith("We open at ten") and turn.heard_text.endswith(call.agent.apology)

    on_fake_time(scenario)


def test_tts_failure_drops_the_rest_of_the_reply_and_apologises():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)]) as call:
            call.tts.fail_on = "eighty"
            await call.say(PRICE)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.failed and turn.heard_text.endswith(call.agent.apology)
            assert "sixty" not in turn.heard_text
            assert [e["stage"] for e in call.record.events if e["kind"] == "error"] == ["tts"]

    on_fake_time(scenario)


def test_a_bug_in_a_call_task_is_an_internal_error_not_a_provider_error():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ScriptedReply(["x"], crash=True), ANSWER]) as call:
            await call.say(OPEN)
            await call.silence(1.0)
            await call.say(PRICE)
            await call.quiet()
            errors = [e for e in call.record.events if e["kind"] == "error"]
            assert errors and errors[0]["stage"] == "internal" and "scripted bug" in errors[0]["message"]
            assert call.counter("voxline_internal_errors_total", task="turn") == 1
            assert (
                call.metrics.registry.get_sample_value(
                    "voxline_provider_errors_total", {"provider": "embedded", "kind": "RuntimeError"}
                )
                is None
            )
            crashed, answered = call.record.turns
            assert (crashed.outcome, crashed.end_reason, crashed.failed) == ("discarded", "error", True)
            # Nothing of the crashed turn was heard: its words are answered with the next ones.
            assert answered.caller_text == f"{TEXTS[OPEN]} {TEXTS[PRICE]}" and answered.outcome == "done"

    on_fake_time(scenario)


def test_prefill_reads_the_utterance_while_the_caller_speaks():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER], prefills_locally=True) as call:
            await call.say(OPEN, 2.5)
            await call.quiet()
            assert call.llm.prefills, "the LLM was given the partial utterance"
            assert call.llm.prefills[0][-1] == {"role": "user", "content": TEXTS[OPEN]}

    on_fake_time(scenario)


def test_no_prefill_while_a_reply_is_on_its_way():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)], prefills_locally=True) as call:
            await call.say(PRICE, 0.5)
            await call.until_heard(1)
            before = len(call.llm.prefills)
            await call.say(MORE, 2.5)  # interrupts, then keeps talking: prefill resumes after the barge-in
            assert len(call.llm.prefills) > before

    on_fake_time(scenario)


def test_closing_mid_reply_settles_it_as_a_hang_up_and_keeps_the_history():
    async def scenario():
        call = await start_call(TEXTS, replies=[spaced(LONG)])
        await call.say(PRICE)
        await call.until_heard(1)
        await call.silence(0.6)
        await call.close()
        [turn] = call.record.turns
        assert turn.outcome == "interrupted" and turn.end_reason == "hangup"
        assert call.record.history[-1] == {"role": "assistant", "content": turn.heard_text}
        assert call.record.ended_at is not None and call.record.outcome == "completed"
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert tasks == [], tasks

    on_fake_time(scenario)


def test_a_closed_session_is_freed_by_reference_counting():
    async def scenario():
        call = await start_call(TEXTS, replies=[ANSWER])
        await call.say(OPEN)
        await call.quiet()
        await call.close()
        ref = weakref.ref(call.session)
        gc.disable()
        try:
            call.far_end.on_mark = lambda name: None
            del call
            await asyncio.sleep(0)
            assert ref() is None, gc.get_referrers(ref())
        finally:
            gc.enable()

    on_fake_time(scenario)


def test_replies_wait_and_speeches_report_whether_they_were_heard():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG), ANSWER]) as call:
            await call.say(PRICE)
            await call.until(
                lambda: (
                    call.session._reply is not None
                    and call.session._reply.turn == 1
                    and bool(call.session._reply.speeches)
                )
            )
            cut_reply = call.session._reply
            speech = cut_reply.speeches[0]
            await call.silence(0.6)
            await call.say(MORE, 0.5)
            await call.silence(0.5)  # a short utterance over the agent: its words decide, once it ends
            assert await cut_reply.wait() is ReplyState.INTERRUPTED and cut_reply.reason is EndReason.CALLER
            assert await speech.heard() is False
            await call.until(lambda: call.session._reply.turn == 2 and bool(call.session._reply.speeches))
            answer = call.session._reply
            assert await answer.wait() is ReplyState.DONE and await answer.speeches[0].heard() is True

    on_fake_time(scenario)


def test_audio_is_paced_at_real_time_with_a_mark_after_each_clause():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)]) as call:
            await call.say(PRICE)
            await call.quiet()
            [turn] = call.record.turns
            sent = [(t, n) for t, k, n in call.far_end.log if k == "audio" and t > 1.0]
            start = sent[0][0]
            total = 0
            for at, size in sent:
                total += size
                assert total / 8000 - (at - start) <= 0.2 + 0.021  # never more than ~200 ms ahead
            marks = [n for _, k, n in call.far_end.log if k == "mark"]
            assert len(marks) == len(call.session._reply.pieces) + 1  # + the greeting's
            assert turn.heard_text == turn.agent_text.strip()
            assert call.far_end.audio_seconds() == pytest.approx(
                (len(turn.agent_text.split()) + len(call.agent.greeting.split())) * SECONDS_PER_WORD, abs=0.5
            )

    on_fake_time(scenario)


def test_a_pause_inside_a_phone_number_does_not_end_the_turn():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER]) as call:
            await call.say(NUMBER, 1.0)
            await call.silence(0.7)  # between digit groups
            await call.say(REST, 1.0)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.caller_text == TEXTS[REST] and len(call.llm.prompts) == 1
            assert not any(t > 0 for t in call.far_end.times("clear"))

    on_fake_time(scenario)


def test_the_reply_starts_at_the_pause_and_plays_as_soon_as_the_turn_ends():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER]) as call:
            spoke_until = await call.say(BOOK, 1.2)
            await call.quiet()
            [turn] = call.record.turns
            stages = turn.stages_ms
            assert 680 <= stages["turn_detected"] <= 720  # a statement: 700 ms of silence
            # Transcribed at the pause (100 + 150 ms), answered and synthesized before the turn ended:
            assert stages["first_audio"] < stages["turn_detected"]
            assert stages["first_frame_sent"] == pytest.approx(stages["turn_detected"], abs=20)
            first_out = next(t for t in call.far_end.times("audio") if t > spoke_until)
            assert first_out - spoke_until == pytest.approx(stages["turn_detected"] / 1000, abs=0.03)
            assert call.counter("voxline_speculative_replies_total", outcome="used") == 1

    on_fake_time(scenario)


def test_a_speculative_reply_is_dropped_unheard_when_the_caller_goes_on():
    async def scenario():
        async with scripted_call(TEXTS, replies=[ANSWER, ANSWER]) as call:
            spoke_until = await call.say(BOOK, 1.0)
            await call.silence(0.5)  # the reply was started at the pause: the caller goes on
            await call.say(MORE, 1.0)
            await call.quiet()
            [turn] = call.record.turns
            assert turn.outcome == "done"
            assert call.counter("voxline_speculative_replies_total", outcome="dropped") == 1
            first_out = next(t for t in call.far_end.times("audio") if t > spoke_until)
            assert first_out > spoke_until + 1.5  # nothing was heard before the caller finished

    on_fake_time(scenario)


def test_a_backchannel_pauses_the_agent_which_goes_on_without_repeating():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)]) as call:
            await call.say(PRICE)
            await call.until_heard(1)
            await call.silence(1.0)
            onset = call.now()
            await call.say(OKAY, 0.3)
            ended = call.now()
            await call.quiet()
            [turn] = call.record.turns
            assert turn.outcome == "done" and turn.heard_text.split() == turn.agent_text.split()  # all of it, once
            kinds = [e["kind"] for e in call.record.events]
            assert "backchannel" in kinds and "barge-in" not in kinds
            [clear] = [t for t in call.far_end.times("clear") if t > onset]
            assert clear - onset <= 0.15  # paused at once, as a real interruption would be
            resumed = next(t for t in call.far_end.times("audio") if t > clear)
            assert resumed - ended <= 1.5
            words = len(turn.agent_text.split())
            assert call.far_end.audio_seconds() <= (words + 1) * SECONDS_PER_WORD + 6.0  # + the greeting
            assert call.counter("voxline_caller_overlaps_total", kind="backchannel") == 1

    on_fake_time(scenario)


def test_a_cough_over_the_agent_is_a_false_interruption_and_the_agent_resumes():
    async def scenario():
        async with scripted_call(TEXTS, replies=[spaced(LONG)]) as call:
            await call.say(PRICE)
            await call.until_heard(1)
            await call.silence(0.8)
            await call.say(COUGH, 0.3)
            ended = call.now()
            await call.quiet()
            [turn] = call.record.turns
            assert turn.outcome == "done" and turn.heard_text.split() == turn.agent_text.split()
            assert "false-interruption" in [e["kind"] for e in call.record.events]
            resumed = next(t for t, kind, _ in call.far_end.log if kind == "audio" and t > ended)
            assert resumed - ended <= 1.5
            assert len(call.llm.prompts) == 1

    on_fake_time(scenario)
