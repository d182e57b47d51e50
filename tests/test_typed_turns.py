"""Typed caller turns (``voxline.text``): the softphone's, answered by the same session without the
speech-to-text; a phone call's stream does not take them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import API_TOKEN, AUTH_TOKEN
from voxline.simulator.caller import CallerTurn, SimulatedCall

pytestmark = pytest.mark.e2e

NOTHING = np.zeros(0, np.int16)


async def test_the_softphone_can_type_a_turn(server):
    typed = "How much does a check-up cost?"
    call = SimulatedCall(server.url, softphone_token=API_TOKEN)
    result = await call.run([CallerTurn("typed", NOTHING, text=typed)])
    record = await server.wait_record_closed(result.call_sid)
    assert record.path == "softphone"
    [turn] = [t for t in record.turns if t.kind == "answer"]
    assert turn.caller_text == typed and "60" in turn.agent_text and turn.outcome == "done"
    assert result.turns[0].reply_audible_at is not None


async def test_a_phone_calls_stream_does_not_take_typed_turns(server, caplog):
    call = SimulatedCall(server.url, AUTH_TOKEN)
    result = await call.run([CallerTurn("typed", NOTHING, text="How much does a check-up cost?")], linger_s=2)
    record = await server.wait_record_closed(result.call_sid)
    assert not [t for t in record.turns if t.kind == "answer"]
    assert "voxline.text is the softphone's" in caplog.text


async def test_voxline_call_prints_what_the_caller_was_heard_to_say_and_the_answer(server, prompts):
    import asyncio

    from typer.testing import CliRunner

    from voxline.cli import app

    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOXLINE_API_TOKEN": API_TOKEN, "COLUMNS": "250"}
    args = ["call", "--turn", str(prompts / "hello-world.wav"), "--url", server.url]
    done = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert done.exit_code == 0, done.output
    assert "heard as" in done.output and "agent answered" in done.output
    assert "Hello" in done.output or "hello" in done.output  # what Whisper heard of the prompt
