"""What an attacker or a broken client can do to a running server, and what it must not get:
capacity that holds at its limit, one stream per call, sockets that never start, webhook bodies
that are not Twilio's, unbounded protocol fields, and a peer that stops reading."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
import websockets

from conftest import AUTH_TOKEN, twilio_start
from voxline.access.credentials import PARAMETER, StreamCredentials
from voxline.session.records import MAX_EVENTS, CallRecord
from voxline.simulator.caller import SimulatedCall
from voxline.telephony import messages as m
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e

FROM, TO = "+15005550006", "+15005550001"


async def webhook(url: str, call_sid: str) -> list[str]:
    """The voice webhook, signed; the TwiML verbs it answered with."""
    params = {"CallSid": call_sid, "From": FROM, "To": TO}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url + "/voice-stream",
            data=params,
            headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url + "/voice-stream", params)},
        )
    response.raise_for_status()
    root = ET.fromstring(response.text)
    return ["Connect" if root.find("./Connect/Stream") is not None else v.tag for v in root][:2]


def start_message(
    call_sid: str, stream_sid: str = "MZ" + "f" * 32, credential: str | None = None, **params: str
) -> str:
    return twilio_start(call_sid, stream_sid, credential, From=FROM, To=TO, **params)


def stream_url(server) -> str:
    return server.url.replace("http", "ws", 1) + "/media-stream"


def signed(server) -> dict[str, str]:
    return {"X-Twilio-Signature": sign(AUTH_TOKEN, stream_url(server))}


async def until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def closed_with(ws, timeout_s: float = 5.0) -> int | None:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout_s)
    return ws.close_code


# Capacity


async def test_calls_admitted_together_at_the_limit_are_all_served_and_the_slots_come_back(make_server):
    server = make_server(max_calls=2)
    calls = [SimulatedCall(server.url, AUTH_TOKEN) for _ in range(2)]
    placed = [asyncio.create_task(call.run([], linger_s=2.0)) for call in calls]
    await until(lambda: len(server.services.registry.active) == 2)
    assert await webhook(server.url, "CA" + "7" * 32) == ["Play", "Hangup"]  # full: the third hears busy
    results = await asyncio.gather(*placed)
    for result in results:
        assert result.greeting_audible_at is not None  # both streams were served
        record = await server.wait_record_closed(result.call_sid)
        assert record.outcome == "completed"
    assert server.services.slots.in_use() == 0
    assert await webhook(server.url, "CA" + "8" * 32) == ["Connect"]  # nothing is left locked


async def test_a_place_held_for_a_stream_that_never_comes_is_given_back(make_server):
    server = make_server(max_calls=1, stream_admission_s=0.5)
    assert await webhook(server.url, "CA" + "1" * 32) == ["Connect"]
    assert await webhook(server.url, "CA" + "1" * 32) == ["Connect"]  # Twilio's retry: the same place
    assert await webhook(server.url, "CA" + "2" * 32) == ["Play", "Hangup"]
    await asyncio.sleep(0.7)
    assert await webhook(server.url, "CA" + "3" * 32) == ["Connect"]


async def test_a_stream_over_the_limit_is_refused_at_start_and_frees_nothing_it_did_not_hold(make_server):
    server = make_server(max_calls=1)
    assert await webhook(server.url, "CA" + "4" * 32) == ["Connect"]
    async with websockets.connect(stream_url(server), additional_headers=signed(server)) as ws:
        await ws.send(start_message("CA" + "5" * 32))  # admitted nowhere, and the only place is taken
        assert await closed_with(ws) == 1013
    assert server.services.slots.in_use() == 1  # the admitted call keeps its place


async def test_a_second_stream_for_a_call_is_refused_and_the_first_goes_on(make_server):
    server = make_server()
    call = SimulatedCall(server.url, AUTH_TOKEN)
    placed = asyncio.create_task(call.run([], linger_s=1.5))
    await until(lambda: call.call_sid in server.services.registry.active)
    async with websockets.connect(stream_url(server), additional_headers=signed(server)) as ws:
        await ws.send(start_message(call.call_sid, stream_sid="MZ" + "e" * 32))
        assert await closed_with(ws) == 1008
    result = await placed
    record = await server.wait_record_closed(result.call_sid)
    assert record.stream_sid == call.stream_sid and record.outcome == "completed"
    assert result.greeting_audible_at is not None


# Sockets that never start


async def test_a_socket_without_start_is_closed_and_one_client_cannot_hold_many(make_server):
    server = make_server(stream_start_timeout_s=0.5, unstarted_streams_per_client=2)
    opened = time.monotonic()
    async with websockets.connect(stream_url(server), additional_headers=signed(server)) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        assert await closed_with(ws) == 1008
    assert time.monotonic() - opened < 3.0
    held = [await websockets.connect(stream_url(server), additional_headers=signed(server)) for _ in range(2)]
    try:
        async with websockets.connect(stream_url(server), additional_headers=signed(server)) as third:
            assert await closed_with(third, 2.0) == 1013
    finally:
        for ws in held:
            await ws.close()
    await until(lambda: not server.services.unstarted._open)


# Webhook bodies


async def test_webhook_bodies_that_are_not_twilio_forms_are_refused_before_they_are_read(server):
    url = server.url + "/voice-stream"
    async with httpx.AsyncClient() as client:
        big = await client.post(url, content=b"CallSid=" + b"A" * 400_000, headers={"Content-Type": m_form()})
        assert big.status_code == 413

        async def trickle():
            for _ in range(100):
                yield b"A" * 4096

        chunked = await client.post(url, content=trickle(), headers={"Content-Type": m_form()})
        assert chunked.status_code == 413
        as_json = await client.post(url, json={"CallSid": "CA" + "1" * 32})
        assert as_json.status_code == 415
        unsigned = await client.post(url, data={"CallSid": "CA" + "1" * 32})
        assert unsigned.status_code == 403


def m_form() -> str:
    return "application/x-www-form-urlencoded"


# Protocol fields


def test_dtmf_digits_and_custom_parameters_are_bounded():
    def dtmf(digit: object) -> str:
        return json.dumps({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": digit}})

    for digit in "0123456789*#ABCD":
        assert m.parse(dtmf(digit)) == m.Dtmf("MZ1", digit)
    for bad in ("x" * 60_000, "12", "", "E", 5, None):
        with pytest.raises(m.ProtocolError):
            m.parse(dtmf(bad))
    with pytest.raises(m.ProtocolError):
        m.parse(start_message("CA1", note="x" * 600))
    with pytest.raises(m.ProtocolError):
        m.parse(start_message("CA1", **{f"p{i}": "v" for i in range(40)}))
    with pytest.raises(m.ProtocolError):
        m.parse(start_message("CA" + "1" * 5000))
    assert m.parse(start_message("CA1", note="fine")).custom_parameters["note"] == "fine"


def test_network_values_in_log_lines_are_bounded_and_escaped():
    forged = "Call\n2026-12-06 INFO forged line" + "x" * 70_000
    text = m.shown(forged)
    assert "\n" not in text and len(text) < 80
    connected = m.parse(json.dumps({"event": "connected", "protocol": forged, "version": forged}))
    assert isinstance(connected, m.Connected) and len(connected.protocol) <= m.MAX_NAME_CHARS


def test_a_call_record_keeps_a_bounded_number_of_events():
    record = CallRecord(call_sid="CA1", stream_sid="MZ1", agent="a")
    for _ in range(MAX_EVENTS * 3):
        record.event("dtmf", digit="1")
    assert len(record.events) == MAX_EVENTS
    assert record.events[-1]["kind"] == "events-dropped"


async def test_dtmf_that_is_not_a_key_is_skipped_and_the_call_goes_on(make_server):
    server = make_server()
    call_sid, stream_sid = "CA" + "6" * 32, "MZ" + "6" * 32
    async with websockets.connect(stream_url(server), additional_headers=signed(server)) as ws:
        await ws.send(start_message(call_sid, stream_sid))
        await until(lambda: call_sid in server.services.registry.active)
        for digit in ("x" * 60_000, "5"):
            await ws.send(json.dumps({"event": "dtmf", "streamSid": stream_sid, "dtmf": {"digit": digit}}))
        await until(lambda: any(e["kind"] == "dtmf" for e in server.record(call_sid).events))
        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}}))
    record = await server.wait_record_closed(call_sid)
    assert [e["digit"] for e in record.events if e["kind"] == "dtmf"] == ["5"]


# A peer that stops reading


@pytest.mark.parametrize("asgi_websockets", [False, True], ids=["direct", "asgi"])
async def test_a_peer_that_stops_reading_is_dropped_and_frees_its_place(make_server, asgi_websockets, tmp_path):
    from importlib import resources

    # A greeting long enough (about a minute) to fill every buffer between the server and a
    # client that reads nothing.
    agent = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    long = "Thank you for calling, we are open Monday to Friday from nine to six. " * 12
    agent_file = tmp_path / "long-greeting.toml"
    agent_file.write_text(re.sub(r'(?m)^greeting = ".*"$', f'greeting = "{long}"', agent), encoding="utf-8")
    server = make_server(
        max_calls=1, send_timeout_s=1.0, asgi_websockets=asgi_websockets, agent_file=agent_file, send_buffer=8192
    )
    call_sid, stream_sid = "CA" + "9" * 32, "MZ" + "9" * 32
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    reader.connect(("127.0.0.1", server.port))
    async with websockets.connect(
        stream_url(server), additional_headers=signed(server), sock=reader, max_queue=1, ping_interval=None
    ) as ws:
        await ws.send(start_message(call_sid, stream_sid))
        # the greeting fills the socket's buffers, nothing reads them: the server gives the call up
        record = await server.wait_record_closed(call_sid, timeout_s=60)
    assert record.outcome == "not-reading"
    assert server.services.slots.in_use() == 0


# Stream credentials


def test_a_stream_credential_names_one_call_and_expires():
    now = [1_000_000.0]
    credentials = StreamCredentials("token", ttl_s=60, clock=lambda: now[0])
    issued = credentials.issue("CA1")
    assert credentials.problem("CA1", issued) is None
    assert "another call" in credentials.problem("CA2", issued)
    assert "another call" in StreamCredentials("other-token").problem("CA1", issued)
    assert "no stream credential" in credentials.problem("CA1", "")
    assert "malformed" in credentials.problem("CA1", "v1.abc.def")
    now[0] += 61
    assert "expired" in credentials.problem("CA1", issued)


@pytest.mark.parametrize(
    "credential",
    [
        "",  # a captured upgrade signature, and a call no webhook admitted
        StreamCredentials(AUTH_TOKEN).issue("CA" + "a" * 32),  # another call's
        StreamCredentials(AUTH_TOKEN, clock=lambda: time.time() - 3600).issue("CA" + "b" * 32),  # expired
    ],
    ids=["none", "another-call", "expired"],
)
async def test_a_start_without_its_calls_credential_is_refused(server, credential):
    call_sid = "CA" + "b" * 32
    async with websockets.connect(stream_url(server), additional_headers=signed(server)) as ws:
        await ws.send(start_message(call_sid, credential=credential))
        assert await closed_with(ws) == 1008
    assert server.record(call_sid) is None  # no record was made or overwritten


async def test_a_stream_reaches_an_instance_other_than_its_webhooks(make_server):
    """Instances share only their configuration: the credential is checked without shared state."""
    first, second = make_server(), make_server()
    call_sid = "CA" + "c" * 32
    params = {"CallSid": call_sid, "From": FROM, "To": TO}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            first.url + "/voice-stream",
            data=params,
            headers={"X-Twilio-Signature": sign(AUTH_TOKEN, first.url + "/voice-stream", params)},
        )
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    custom = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert custom["CallSid"] == call_sid and PARAMETER in custom
    async with websockets.connect(stream_url(second), additional_headers=signed(second)) as ws:
        await ws.send(start_message(call_sid, credential=custom[PARAMETER]))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "media"  # the greeting
    record = await second.wait_record_closed(call_sid)
    assert record.caller == FROM
    # and the same call cannot be streamed again, not even after it ended
    async with websockets.connect(stream_url(second), additional_headers=signed(second)) as ws:
        await ws.send(start_message(call_sid, credential=custom[PARAMETER]))
        assert await closed_with(ws) == 1008


# Replays, metrics, health


async def test_a_replayed_recording_webhook_gets_the_same_answer_and_runs_no_second_turn(server, librivox):
    from conftest import ACCOUNT_SID
    from voxline.simulator.recorded_call import RecordingServer
    from voxline.simulator.voices import speech_from_wav

    call_sid = "CA" + secrets.token_hex(16)

    async def post(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> httpx.Response:
        url = server.url + path
        return await client.post(url, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)})

    base = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": FROM, "To": TO}
    async with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings, httpx.AsyncClient(timeout=60) as client:
        assert (await post(client, "/voice", base)).status_code == 200
        url = recordings.add(speech_from_wav(librivox["0880"]))
        params = {**base, "RecordingUrl": url, "RecordingSid": url.rsplit("/", 1)[1], "RecordingDuration": "3"}
        first = await post(client, "/voice/recording", params)
        again, together = await asyncio.gather(
            post(client, "/voice/recording", params), post(client, "/voice/recording", params)
        )
        hang_up = {**base, "Digits": "hangup"}
        assert (await post(client, "/voice/recording", hang_up)).status_code == 200
        assert (await post(client, "/voice/recording", hang_up)).text.count("<Response") == 1  # nothing to end
    assert first.status_code == 200 and "<Play>" in first.text
    assert again.text == first.text and together.text == first.text
    assert recordings.requests == 1  # fetched, transcribed and answered once
    record = await server.wait_record_closed(call_sid)
    assert len(record.turns) == 1 and record.outcome == "completed"


async def test_metrics_can_require_a_token_and_healthz_shows_no_error_text(make_server):
    server = make_server(metrics_token="scrape-secret")
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.url + "/metrics")).status_code == 401
        scraped = await client.get(server.url + "/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert scraped.status_code == 200 and "voxline_active_calls" in scraped.text
        health = (await client.get(server.url + "/healthz")).json()
    assert health["status"] == "ready" and "error" not in health["store"]


# Forgetting a caller


async def test_forgetting_a_caller_covers_a_call_in_progress_memory_and_its_audio(server, librivox):
    from conftest import ACCOUNT_SID, API_TOKEN
    from voxline.simulator.caller import CallerTurn
    from voxline.simulator.recorded_call import RecordedCall
    from voxline.simulator.voices import speech_from_wav

    number = "+1555" + str(secrets.randbelow(10**7)).zfill(7)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    recorded = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID, caller=number).run(
        [CallerTurn("one", speech_from_wav(librivox["0880"]))]
    )
    audio = server.services.audio
    assert audio._owner_list(recorded.call_sid).is_file()
    call = SimulatedCall(server.url, AUTH_TOKEN, caller=number)
    placed = asyncio.create_task(call.run([CallerTurn("hello", speech_from_wav(librivox["0930"]))], linger_s=1.0))
    await until(lambda: call.call_sid in server.services.registry.active)
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as client:
        assert any(c["call_sid"] == call.call_sid for c in (await client.get("/api/live")).json()["calls"])
        forgotten = await client.delete(f"/api/callers/{number}")
        assert forgotten.status_code == 200 and forgotten.json()["deleted_calls"] == 2
        assert call.call_sid in server.services.registry.active  # still talking, but no longer shown
        assert all(c["call_sid"] != call.call_sid for c in (await client.get("/api/live")).json()["calls"])
        result = await placed
        assert result.turns[0].latency_s is not None  # the call in progress went on for the caller
        await asyncio.sleep(0.5)
        assert await server.services.store.writer.drained(10)
        for sid in (recorded.call_sid, call.call_sid):
            assert (await client.get(f"/api/calls/{sid}")).status_code == 404  # not from memory, not stored
            assert server.record(sid) is None
        listed = (await client.get("/api/calls", params={"number": number})).json()
    assert listed["total"] == 0
    assert not audio._owner_list(recorded.call_sid).exists()
