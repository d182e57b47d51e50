"""A call whose LLM is a hosted OpenAI-compatible API (a local server speaking its protocol)."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from conftest import AUTH_TOKEN
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.llm.openai_compat import OpenAICompatibleChat
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

pytestmark = pytest.mark.e2e


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


async def test_hosted_llm_answers_and_a_failing_one_gets_an_apology(server, make_server, librivox):
    async with FakeOpenAI() as fake:
        hosted = make_server(stack=dataclasses.replace(server.services.stack))
        # Through the server's own pooled session, made on the server's event loop, as a hosted LLM in its stack is.
        hosted.services.stack.llm = OpenAICompatibleChat(
            hosted.services.http, fake.base_url, API_KEY, "gpt-test", retry_window_s=0.5
        )
        turns = [
            CallerTurn("first", speech_from_wav(librivox["0880"])),
            CallerTurn("second", speech_from_wav(librivox["0930"])),
        ]
        call = SimulatedCall(hosted.url, AUTH_TOKEN)

        async def fail_second_turn():
            while len(fake.requests) < 1:
                await asyncio.sleep(0.05)
            fake.mode = "server-error"

        switcher = asyncio.create_task(fail_second_turn())
        result = await call.run(turns)
        await switcher
        record = await hosted.wait_record_closed(result.call_sid)

    first, second = record.turns
    assert first.agent_text == fake.reply and not first.failed
    heard_first = hosted.transcribe(result.heard(result.turns[0].speech_end, result.turns[0].reply_end))
    assert len(words(heard_first) & words(fake.reply)) >= 6, heard_first
    assert fake.requests[0]["body"]["messages"][-1]["content"] == first.caller_text
    assert second.failed
    heard_second = hosted.transcribe(result.heard(result.turns[1].speech_end, result.turns[1].reply_end))
    assert {"sorry", "trouble"} <= words(heard_second), heard_second
    assert any(e["kind"] == "error" and e.get("stage") == "llm" and e.get("error_kind") == "500" for e in record.events)
    assert record.outcome == "completed"
