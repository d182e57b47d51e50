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
from voxline.simulator.voices import speech_from_text, speech_from_wav
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
        ("Thanks a lot, bye bye.", True),
        ("Okay great, that's all I needed, bye.", True),
        ("Alright, that's everything, have a good day, goodbye.", True),
        ("Bye, I need an appointment for Friday.", False),
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


# Transfer to a person


def transfer_agent(tmp_path, number: str = "+15005550009", whisper: str = ""):
    from importlib import resources

    text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    path = tmp_path / "with-transfer.toml"
    section = f'\n[transfer]\nnumber = "{number}"\ntimeout_s = 15\nwhisper = "{whisper}"\n'
    path.write_text(text + section, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Can I speak to a person, please?", True),
        ("Transfer me to the receptionist.", True),
        ("Operator!", True),
        ("मुझे किसी इंसान से बात करनी है", True),
        ("I need someone to look at my tooth.", False),
        ("Can someone call me back tomorrow?", False),
    ],
)
def test_what_counts_as_asking_for_a_person(text: str, asks: bool) -> None:
    from voxline.session.handoff import wants_a_person

    assert wants_a_person(text) is asks


async def test_a_caller_who_asks_for_a_person_hears_the_hand_off_then_is_dialled_through(make_server, tmp_path):
    """The caller's words are synthetic (the embedded TTS): no recording of this request exists."""
    from voxline.simulator.voices import speech_from_text

    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, agent_file=transfer_agent(tmp_path))
        call = SimulatedCall(server.url, AUTH_TOKEN)
        twilio.add_call(call.call_sid)
        redirected: list[tuple[float, str]] = []

        def twilio_runs_the_new_twiml(call_sid: str, twiml: str) -> None:
            redirected.append((time.monotonic(), twiml))
            call.end_call()  # the call leaves <Connect>: its stream stops

        twilio.on_redirect = twilio_runs_the_new_twiml
        speech = speech_from_text("Can I speak to a person, please?")
        result = await call.run([CallerTurn("a person", speech)], linger_s=15)
    [(at, twiml)] = redirected
    assert f'<Dial action="{server.url}/voice/transfer-status"' in twiml
    assert 'callerId="+15005550001"' in twiml and "<Number>+15005550009</Number>" in twiml
    assert at >= result.playback.ends_at - 0.05  # only once the hand-off phrase was heard
    heard = server.transcribe(result.heard(since=result.turns[0].speech_end))
    assert {"colleague", "moment"} & words(heard), heard
    record = await server.wait_record_closed(call.call_sid)
    assert record.outcome == "transferred"
    assert [e.get("outcome") for e in record.events if e["kind"] == "transfer"] == ["dialling"]

    # Nobody answers: Twilio reports it, the caller hears the no-answer phrase and leaves a message.
    import httpx

    from voxline.simulator.recorded_call import RecordingServer
    from voxline.telephony.security import sign

    async def post(client, path: str, params: dict[str, str]) -> str:
        url = server.url + path
        answer = await client.post(url, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)})
        answer.raise_for_status()
        return answer.text

    base = {"CallSid": call.call_sid, "AccountSid": ACCOUNT_SID, "From": call.caller, "To": call.called}
    async with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings, httpx.AsyncClient(timeout=60) as client:
        status = await post(client, "/voice/transfer-status", {**base, "DialCallStatus": "no-answer"})
        assert "<Play>" in status and f'<Record action="{server.url}/voice/message"' in status
        url = recordings.add(speech_from_text("Please call me back about my appointment."))
        params = {**base, "RecordingUrl": url, "RecordingSid": "RE" + "7" * 32, "RecordingDuration": "3"}
        thanks = await post(client, "/voice/message", params)
        assert "<Hangup />" in thanks
        assert await post(client, "/voice/message", params) == thanks  # a replay: the same, kept once
    outcomes = [(e["kind"], e.get("outcome")) for e in record.events if e["kind"] in ("transfer", "message")]
    assert outcomes == [("transfer", "dialling"), ("transfer", "no-answer"), ("message", None)]
    [message] = [e for e in record.events if e["kind"] == "message"]
    assert {"call", "back", "appointment"} <= words(message["text"]), message


async def test_without_the_rest_api_a_transfer_request_is_apologised_for_and_the_call_goes_on(make_server, tmp_path):
    from voxline.simulator.voices import speech_from_text

    server = make_server(agent_file=transfer_agent(tmp_path), TWILIO_ACCOUNT_SID="")
    call = SimulatedCall(server.url, AUTH_TOKEN)
    result = await call.run([CallerTurn("a person", speech_from_text("Can I speak to a person, please?"))], linger_s=8)
    record = await server.wait_record_closed(call.call_sid)
    assert [e.get("outcome") for e in record.events if e["kind"] == "transfer"] == ["unavailable"]
    assert record.outcome == "completed"
    transfer = server.services.agent.transfer
    assert [t.heard_text for t in record.turns] == [transfer.phrase, transfer.unavailable]  # both heard in full
    assert result.messages_received.get("clear") is None


async def test_on_the_recording_path_a_caller_who_asks_for_a_person_is_dialled_through(make_server, tmp_path):
    from voxline.simulator.recorded_call import RecordedCall

    server = make_server(agent_file=transfer_agent(tmp_path))
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID).run(
        [CallerTurn("a person", speech_from_text("Can I speak to a person, please?"))]
    )
    [turn] = result.turns
    assert turn.twiml.count("<Play>") == 1 and "<Record" not in turn.twiml
    assert '<Dial action="' in turn.twiml and "/voice/transfer-status" in turn.twiml
    assert "<Number>+15005550009</Number>" in turn.twiml and 'timeout="15"' in turn.twiml
    record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "transferred"
    assert [t.agent_text for t in record.turns] == [server.services.agent.transfer.phrase]
    assert {"kind": "transfer", "outcome": "dialling"}.items() <= next(
        e for e in record.events if e["kind"] == "transfer"
    ).items()


async def test_a_warm_hand_off_tells_the_person_what_the_caller_said_first(make_server, tmp_path):
    """The caller's words are synthetic (the embedded TTS): no recording of this request exists."""
    import httpx

    from voxline.telephony.security import sign

    whisper = "A caller from the front desk. They said: {said}"
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, agent_file=transfer_agent(tmp_path, whisper=whisper))
        call = SimulatedCall(server.url, AUTH_TOKEN)
        twilio.add_call(call.call_sid)
        twilio.on_redirect = lambda _sid, _twiml: call.end_call()
        speech = speech_from_text("Can I speak to a person about my bill, please?")
        await call.run([CallerTurn("a person", speech)], linger_s=15)
    twiml = twilio.requests[-1].params["Twiml"]
    url = f"{server.url}/voice/whisper?call={call.call_sid}"
    assert f'<Number method="POST" url="{url}">+15005550009</Number>' in twiml
    # The person answers: Twilio fetches the whisper for their leg (its own CallSid), signed.
    params = {"CallSid": "CA" + "5" * 32, "ParentCallSid": call.call_sid, "AccountSid": ACCOUNT_SID}
    async with httpx.AsyncClient(timeout=60) as client:
        unsigned = await client.post(url, data=params)
        assert unsigned.status_code == 403
        answer = await client.post(url, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)})
        answer.raise_for_status()
        played = re.search(r"<Play>(.*?)</Play>", answer.text).group(1)
        audio = (await client.get(played)).content
    from voxline.telephony.recordings import decode_wav

    heard = server.transcribe(decode_wav(audio))
    assert {"front", "desk", "bill"} <= words(heard), heard
