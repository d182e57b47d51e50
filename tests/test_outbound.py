"""Outbound calls: placed over Twilio's REST API (a local fake speaking its wire format), followed
through Twilio's signed status and answering-machine callbacks, streamed to the agent."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN
from voxline.access.outbound import OutboundCalls, PlacedCall
from voxline.fakes.twilio_server import FakeTwilioRest
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

BUSINESS, PERSON = "+15005550006", "+14155550123"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_the_rate_limit_counts_calls_in_any_60_seconds() -> None:
    now = [0.0]
    calls = OutboundCalls(per_minute=2, clock=lambda: now[0])
    assert calls.admit() == 0 and calls.admit() == 0
    now[0] = 45.0
    assert calls.admit() == pytest.approx(15.0)  # the first one leaves the window at 60 s
    now[0] = 60.0
    assert calls.admit() == 0


def test_who_answered_reaches_the_session_whether_it_came_first_or_not() -> None:
    calls = OutboundCalls(per_minute=10)
    heard: list[str] = []
    calls.placed(PlacedCall("CA1", PERSON, BUSINESS))
    calls.placed(PlacedCall("CA2", PERSON, BUSINESS))
    assert calls.answered_by("CA1", "human")  # before its stream started
    assert calls.listen("CA1", heard.append) is not None
    assert calls.listen("CA2", heard.append) is not None
    assert calls.answered_by("CA2", "machine_end_beep")
    assert heard == ["human", "machine_end_beep"]
    assert not calls.answered_by("CA9", "human")  # not placed here


async def place(server, to: str = PERSON, **body: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.post("/api/calls", json={"to": to, **body}, headers=AUTH)


async def test_placing_a_call_asks_twilio_for_the_stream_progress_and_machine_detection(make_server):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, outbound_from=BUSINESS, outbound_per_minute=2)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.post("/api/calls", json={"to": PERSON})).status_code == 401
        assert (await place(server, to="4155550123")).status_code == 422  # not E.164
        answer = await place(server)
        assert answer.status_code == 201, answer.text
        placed = answer.json()
        assert placed["to"] == PERSON and placed["from"] == BUSINESS and placed["status"] == "queued"
        params = twilio.created[placed["call_sid"]]
        assert params["Url"] == [f"{server.url}/voice-stream"]
        assert params["StatusCallback"] == [f"{server.url}/voice/call-status"]
        assert params["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        assert params["MachineDetection"] == ["DetectMessageEnd"] and params["AsyncAmd"] == ["true"]
        assert params["AsyncAmdStatusCallback"] == [f"{server.url}/voice/amd"]
        assert (await place(server, **{"from": "+15005550001"})).status_code == 201
        limited = await place(server)
        assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
        refused = await place(server, to="+15005550001")  # more than the limit, still
        assert refused.status_code == 429
    no_rest = make_server(TWILIO_ACCOUNT_SID="", outbound_from=BUSINESS)
    unavailable = await place(no_rest)
    assert unavailable.status_code == 503 and "REST API" in unavailable.json()["detail"]


async def test_a_call_twilio_refuses_is_a_502_with_twilios_reason(make_server):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, numbers={BUSINESS}) as twilio:
        server = make_server(twilio_api_base_url=twilio.url)  # no VOXLINE_OUTBOUND_FROM
        no_from = await place(server)
        assert no_from.status_code == 422 and "'from'" in no_from.json()["detail"]
        refused = await place(server, **{"from": "+15005550001"})  # not a number of the account
        assert refused.status_code == 502 and "21210" in refused.json()["detail"]
        assert (await place(server, **{"from": BUSINESS})).status_code == 201


async def answer_when_streaming(server, twilio: FakeTwilioRest, call_sid: str, answered_by: str, after_s: float):
    """Twilio's detection result, ``after_s`` into the call's stream."""
    deadline = time.monotonic() + 20
    while server.record(call_sid) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(after_s)
    assert await twilio.report_answered_by(call_sid, answered_by) == 204


def callee(server, call_sid: str) -> SimulatedCall:
    """The placed call as Twilio runs it once answered: the voice webhook, then the stream."""
    return SimulatedCall(
        server.url, AUTH_TOKEN, caller=BUSINESS, called=PERSON, call_sid=call_sid, direction="outbound-api"
    )


async def test_a_person_who_answers_hears_the_greeting_once_twilio_says_it_is_a_person(make_server, prompts):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, outbound_from=BUSINESS)
        call_sid = (await place(server)).json()["call_sid"]
        for status in ("initiated", "ringing", "answered"):
            assert await twilio.report_status(call_sid, status) == 204
        twilio.add_call(call_sid)
        call = callee(server, call_sid)
        amd = asyncio.create_task(answer_when_streaming(server, twilio, call_sid, "human", after_s=1.0))
        result = await call.run([CallerTurn("question", speech_from_wav(prompts / "hello-world.wav"))])
        await amd
        assert await twilio.report_status(call_sid, "completed", duration_s=9) == 204
        record = await server.wait_record_closed(call_sid)
    assert result.greeting_audible_at is not None and result.greeting_audible_at - result.started >= 1.0
    statuses = [e["status"] for e in record.events if e["kind"] == "call-status"]
    assert statuses == ["initiated", "ringing", "answered", "completed"]
    assert {"kind": "answered-by", "answer": "human"}.items() <= next(
        e for e in record.events if e["kind"] == "answered-by"
    ).items()
    assert record.caller == BUSINESS and record.called == PERSON
    assert record.turns[-1].caller_text and record.turns[-1].agent_text  # the person talked with the agent


async def test_an_answering_machine_gets_the_voicemail_message_then_the_call_ends(make_server):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, outbound_from=BUSINESS)
        call_sid = (await place(server)).json()["call_sid"]
        twilio.add_call(call_sid)
        call = callee(server, call_sid)
        twilio.on_end = lambda _sid: call.end_call()
        amd = asyncio.create_task(answer_when_streaming(server, twilio, call_sid, "machine_end_beep", after_s=0.5))
        result = await call.run([], linger_s=30)
        await amd
        record = await server.wait_record_closed(call_sid)
    voicemail = server.services.agent.outbound.voicemail
    assert record.outcome == "voicemail"
    assert record.turns[0].agent_text == voicemail and record.turns[0].outcome == "done"  # heard in full
    assert twilio.requests[-1].params == {"Status": "completed"}
    assert call.hang_up_at is not None and result.greeting_end is not None
    assert call.hang_up_at >= result.greeting_end - 0.05  # ended once the message was heard
    heard = server.transcribe(result.heard()).lower()
    assert "call" in heard and "back" in heard


async def test_a_call_nobody_answers_is_recorded_with_its_outcome(make_server):
    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, outbound_from=BUSINESS)
        call_sid = (await place(server)).json()["call_sid"]
        for status in ("initiated", "ringing", "no-answer"):
            assert await twilio.report_status(call_sid, status) == 204
        record = await server.wait_record_closed(call_sid)
        assert record.outcome == "no-answer" and record.called == PERSON
        assert [e.get("status") for e in record.events if e["kind"] == "call-status"] == [
            "initiated",
            "ringing",
            "no-answer",
        ]
        async with httpx.AsyncClient(base_url=server.url) as client:
            shown = await client.get(f"/api/calls/{call_sid}", headers=AUTH)
            assert shown.status_code == 200 and shown.json()["outcome"] == "no-answer"
            unsigned = await client.post(
                "/voice/call-status", data={"CallSid": call_sid, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}
            )
            assert unsigned.status_code == 403


async def test_voxline_dial_places_the_call_through_the_running_server(make_server):
    from typer.testing import CliRunner

    from voxline.cli import app

    async with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        server = make_server(twilio_api_base_url=twilio.url, outbound_from=BUSINESS)
        runner = CliRunner()
        env = {"VOXLINE_API_TOKEN": API_TOKEN}
        done = await asyncio.to_thread(runner.invoke, app, ["dial", PERSON, "--url", server.url], env=env)
        assert done.exit_code == 0, done.output
        (call_sid,) = twilio.created
        assert call_sid in done.output and twilio.created[call_sid]["To"] == [PERSON]
        bad = await asyncio.to_thread(runner.invoke, app, ["dial", "555-0123", "--url", server.url], env=env)
        assert bad.exit_code == 1 and "422" in bad.output and "E.164" in bad.output
