"""English and Hindi: the caller picks by keypad or by saying it; STT, LLM instruction and voice follow."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from conftest import ACCOUNT_SID, AUTH_TOKEN, RunningServer
from voxline.config import Settings, load_agent
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_text, speech_from_wav

pytestmark = pytest.mark.e2e

DEVANAGARI = re.compile(r"[\u0900-\u097F]")


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory):
    agent_file = resources.files("voxline.agents").joinpath("bilingual.toml")
    settings = Settings(
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        agent_file=str(agent_file),
        data_dir=tmp_path_factory.mktemp("bilingual"),
    )
    running = RunningServer(settings)
    running.start()
    yield running
    running.stop()


def test_the_bilingual_agent_file_loads():
    agent = load_agent(resources.files("voxline.agents").joinpath("bilingual.toml"))
    assert set(agent.languages) == {"en", "hi"} and agent.choose_language
    assert DEVANAGARI.search(agent.languages["hi"].confirmation)


async def test_pressing_2_switches_the_call_to_hindi(bilingual, librivox):
    stack = bilingual.services.stack
    assert stack.stt_for("hi").name == "whisper-base" and stack.stt_for("en").name == "whisper-tiny.en"
    assert stack.tts_for("hi").name == "espeak-ng:hi"
    turns = [
        CallerTurn("press 2", np.zeros(0, np.int16), dtmf="2"),
        CallerTurn("question", speech_from_wav(librivox["0880"])),
    ]
    result = await SimulatedCall(bilingual.url, AUTH_TOKEN).run(turns)
    record = await bilingual.wait_record_closed(result.call_sid)
    assert {"kind": "language", "language": "hi", "by": "keypad"}.items() <= next(
        e for e in record.events if e["kind"] == "language"
    ).items()
    confirmation = bilingual.services.agent.languages["hi"].confirmation
    assert confirmation in [m["content"] for m in record.history]  # Devanagari kept intact
    assert result.turns[0].reply_audible_at is not None  # the confirmation was spoken
    answered = record.turns[-1]
    assert answered.language == "hi" and answered.caller_text and answered.agent_text
    assert result.turns[1].latency_s is not None


async def test_saying_hindi_picks_it(bilingual):
    turns = [CallerTurn("says hindi", speech_from_text("Hindi, please."))]
    result = await SimulatedCall(bilingual.url, AUTH_TOKEN).run(turns)
    record = await bilingual.wait_record_closed(result.call_sid)
    event = next(e for e in record.events if e["kind"] == "language")
    assert event["language"] == "hi" and event["by"] == "speech"
