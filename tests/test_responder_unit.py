"""The responder alone, as the recording path uses it: a whole reply joined from its clauses, and
the same failure policy as a live call (``pytest -m unit``)."""

from __future__ import annotations

import numpy as np
import pytest

from scripted import ScriptedLLM, ScriptedReply, ScriptedSTT, ScriptedTTS, on_fake_time, tone
from voxline.audio import mulaw
from voxline.config import load_agent
from voxline.engine.fallback import report_fallbacks_to
from voxline.engine.stack import VoiceStack
from voxline.errors import ProviderError
from voxline.llm.events import ToolCall
from voxline.session.responder import Responder

pytestmark = pytest.mark.unit


class Collected:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.clauses: list[str] = []
        self.failures: list[tuple[str, str]] = []
        self.tools: list[ToolCall] = []

    def token(self, text: str) -> None:
        self.tokens.append(text)

    def tool_call(self, call: ToolCall) -> None:
        self.tools.append(call)

    def clause(self, text: str, audio: bytes) -> None:
        assert audio
        self.clauses.append(text)

    def failed(self, stage: str, error: ProviderError) -> None:
        self.failures.append((stage, error.kind))


async def responder(
    replies: list[ScriptedReply], stt: ScriptedSTT | None = None, fallback: ScriptedSTT | None = None
) -> tuple[Responder, ScriptedTTS, object]:
    agent = load_agent(None)
    tts = ScriptedTTS()
    stack = VoiceStack(
        stt=stt or ScriptedSTT({3000: "hello"}),
        llm=ScriptedLLM(replies),
        tts=tts,  # type: ignore[arg-type]
        make_vad=lambda: None,
        pools=[],
        fixed_phrases={},
        stt_fallback=fallback,
    )  # type: ignore[arg-type]
    await stack.prerender(agent)
    return Responder(agent, stack), tts, agent


MESSAGES = [{"role": "user", "content": "When are you open?"}]
ANSWER = ScriptedReply(["We open ", "at nine ", "on weekdays, ", "and at ten ", "on Saturday."])


def test_an_answer_is_spoken_clause_by_clause():
    async def scenario():
        r, tts, _ = await responder([ANSWER])
        out = Collected()
        await r.answer(MESSAGES, None, out)
        assert "".join(out.tokens) == "".join(ANSWER.tokens)
        assert len(out.clauses) >= 2 and " ".join(out.clauses).split() == "".join(ANSWER.tokens).split()
        assert out.failures == []

    on_fake_time(scenario)


def test_an_llm_failure_keeps_what_was_said_then_apologises():
    async def scenario():
        r, _, agent = await responder([ScriptedReply(["We open at nine on ", "weekdays and", "never"], fail_after=2)])
        out = Collected()
        await r.answer(MESSAGES, None, out)
        assert out.failures == [("llm", "500")]
        assert out.clauses[0].startswith("We open at nine") and out.clauses[-1] == agent.apology

    on_fake_time(scenario)


def test_a_tts_failure_drops_the_rest_and_apologises():
    async def scenario():
        r, tts, agent = await responder([ANSWER])
        tts.fail_on = "nine"
        out = Collected()
        await r.answer(MESSAGES, None, out)
        assert out.failures == [("tts", "503")] and out.clauses == [agent.apology]

    on_fake_time(scenario)


def test_transcription_falls_back_and_reports_it_to_the_call():
    async def scenario():
        failing = ScriptedSTT({3000: "hello"})
        failing.fail, failing.fail_times = ProviderError("scripted-stt", "timeout", "slow"), 1
        r, _, _ = await responder([], stt=failing, fallback=ScriptedSTT({3000: "hello from the fallback"}))
        reported: list[tuple[str, str, str]] = []
        report_fallbacks_to(lambda stage, exc, name: reported.append((stage, exc.kind, name)))
        audio = mulaw.decode(b"".join(tone(3000, 0.5)))
        assert await r.transcribe(audio, "en") == "hello from the fallback"
        assert reported == [("stt", "timeout", "scripted-stt")]
        failing.fail_times = 1
        r2, _, _ = await responder([], stt=failing)
        with pytest.raises(ProviderError):
            await r2.transcribe(np.zeros(800, dtype=np.int16), "en")

    on_fake_time(scenario)
