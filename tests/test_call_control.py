"""Call control over Twilio's REST API: the agent hangs up once its goodbye has been heard.

Twilio's REST API is a local fake speaking its wire format (``voxline.fakes.twilio_server``):
form-encoded POSTs with Basic auth, JSON answers, 20404 for a call that is not in progress.
"""

from __future__ import annotations

import re
import time

import pytest

from conftest import ACCOUNT_SID, AUTH_TOKEN
from voxline.access.credentials import PARAMETER
from voxline.fakes.twilio_server import FakeTwilioRest
from voxline.session.control import CallControlUnavailable
from voxline.session.farewell import is_farewell
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav
from voxline.telephony.rest import TwilioRest, dial_twiml


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


@pytest.mark.parametrize(
    ("text", "farewell"),
    [
        ("Goodbye.", True),
        ("Okay, thank you so much, bye-bye!", True),
        ("That's all, thanks. Have a nice day, bye.", True),
        ("ठीक है, धन्यवाद, अलविदा", True),
        ("Thank you.", False),  # thanks alone may come before a question
        ("Bye, wait, are you open on Sunday?", False),
        ("I want to say goodbye to my old dentist and book with you.", False),
    ],
)
def test_what_counts_as_the_caller_saying_goodbye(text: str, farewell: bool) -> None:
    assert is_farewell(text) is farewell


def test_a_transfer_dials_the_person_with_the_business_number_as_caller_id() -> None:
    twiml = dial_twiml("+15005550009", caller_id="+15005550001", timeout_s=15)
    assert twiml.endswith('<Dial callerId="+15005550001" timeout="15"><Number>+15005550009</Number></Dial></Response>')


async def test_the_rest_client_speaks_twilios_wire_format() -> None:
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        twilio.add_call("CA" + "1" * 32)
        rest = TwilioRest(ACCOUNT_SID, AUTH_TOKEN, twilio.url)
        try:
            assert await rest.hang_up("CA" + "1" * 32) is True
            assert await rest.hang_up("CA" + "1" * 32) is False  # ended already: 20404, not an error
            assert await rest.redirect("CA" + "2" * 32, dial_twiml("+15005550009")) is False
            wrong = TwilioRest(ACCOUNT_SID, "not-the-token", twilio.url)
            with pytest.raises(CallControlUnavailable, match="401"):
                await wrong.hang_up("CA" + "1" * 32)
            await wrong.close()
        finally:
            await rest.close()
    assert [(r.call_sid[-1], r.params) for r in twilio.requests[:2]] == [
        ("1", {"Status": "completed"}),
        ("1", {"Status": "completed"}),
    ]
    assert "<Dial" in twilio.requests[2].params["Twiml"]


async def test_when_the_caller_says_goodbye_the_agent_says_its_own_then_hangs_up(make_server, prompts):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url)
        call = SimulatedCall(server.url, AUTH_TOKEN)
        twilio.add_call(call.call_sid)
        hung_up_at: list[float] = []

        def twilio_ends_the_call(call_sid: str) -> None:
            hung_up_at.append(time.monotonic())
            call.end_call()

        twilio.on_end = twilio_ends_the_call
        result = await call.run([CallerTurn("goodbye", speech_from_wav(prompts / "goodbye.wav"))], linger_s=15)
    assert [r.params for r in twilio.requests if r.call_sid == call.call_sid] == [{"Status": "completed"}]
    [turn] = result.turns
    assert turn.latency_s is not None
    heard = server.transcribe(result.heard(since=turn.speech_end))
    assert {"goodbye"} <= words(heard) or {"bye"} <= words(heard), heard
    assert hung_up_at and hung_up_at[0] >= result.playback.ends_at - 0.05  # only once the goodbye was heard
    record = await server.wait_record_closed(call.call_sid)
    assert record.turns[-1].agent_text == server.services.agent.goodbye
    assert "hung-up" in [e["kind"] for e in record.events]
    assert PARAMETER not in str(record.to_dict())  # the stream credential is not kept


async def test_a_call_twilio_no_longer_knows_is_not_an_error(make_server, prompts, caplog):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url)
        call = SimulatedCall(server.url, AUTH_TOKEN)  # never added: the fake answers 20404
        result = await call.run([CallerTurn("goodbye", speech_from_wav(prompts / "goodbye.wav"))], linger_s=6)
    assert [r.params for r in twilio.requests if r.call_sid == call.call_sid] == [{"Status": "completed"}]
    assert result.turns[0].latency_s is not None
    assert not [r for r in caplog.records if r.levelname == "ERROR" and call.call_sid in r.getMessage()]


async def test_on_the_recording_path_a_goodbye_is_answered_with_hangup(server, prompts):
    from voxline.simulator.recorded_call import RecordedCall

    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID).run(
        [CallerTurn("goodbye", speech_from_wav(prompts / "goodbye.wav"))]
    )
    [turn] = result.turns
    assert turn.twiml.count("<Play>") == 1 and "<Hangup />" in turn.twiml and "<Record" not in turn.twiml
    assert result.final_twiml == ""  # nothing more to post: Twilio hung up
    record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "completed" and "hung-up" in [e["kind"] for e in record.events]
    assert [t.agent_text for t in record.turns] == [server.services.agent.goodbye]
