"""Hostile and broken input: each gets a logged error and a clean close, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import pytest
import websockets

from conftest import AUTH_TOKEN, twilio_start
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e

STREAM = "MZ" + "1" * 32
CALL = "CA" + "2" * 32


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def start_message(stream_sid: str = STREAM, call_sid: str = CALL) -> str:
    return twilio_start(call_sid, stream_sid)


def ws_url(server) -> str:
    return server.url.replace("http", "ws", 1) + "/media-stream"


def signed(server) -> dict[str, str]:
    return {"X-Twilio-Signature": sign(AUTH_TOKEN, ws_url(server))}


async def test_healthz_reports_ready(server):
    async with httpx.AsyncClient() as client:
        response = await client.get(server.url + "/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ready"


async def test_unsigned_and_badly_signed_webhooks_are_refused(server):
    params = {"CallSid": CALL, "From": "+15005550006", "To": "+15005550001", "CallerCity": ""}
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(server.url + "/voice-stream", data=params)
        forged = await client.post(
            server.url + "/voice-stream",
            data=params,
            headers={"X-Twilio-Signature": sign("wrong-token", server.url + "/voice-stream", params)},
        )
        good = await client.post(
            server.url + "/voice-stream",
            data=params,
            headers={"X-Twilio-Signature": sign(AUTH_TOKEN, server.url + "/voice-stream", params)},
        )
    assert unsigned.status_code == 403 and forged.status_code == 403
    assert (
        good.status_code == 200
        and "<Connect><Stream" in good.text
        and "?" not in good.text.split('url="')[1].split('"')[0]
    )


async def test_unsigned_websocket_is_closed_with_policy_violation(server):
    async with websockets.connect(ws_url(server)) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1008


async def test_trailing_slash_signature_is_accepted(server):
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, ws_url(server) + "/")}
    async with websockets.connect(ws_url(server), additional_headers=headers) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(start_message(call_sid=new_call_sid()))
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["event"] == "media"


async def test_garbage_is_skipped_and_the_stream_goes_on(server, librivox):
    await garbage_then_a_call(server, librivox)


async def test_the_same_over_a_server_without_the_direct_extension(make_server, librivox):
    """Under another ASGI server the stream uses its receive loop: the same behaviour."""
    plain = make_server(asgi_websockets=True)
    await garbage_then_a_call(plain, librivox)


async def garbage_then_a_call(server, librivox) -> None:
    call = new_call_sid()
    healthy = asyncio.create_task(
        SimulatedCall(server.url, AUTH_TOKEN).run([CallerTurn("alongside", speech_from_wav(librivox["0880"]))])
    )
    async with websockets.connect(ws_url(server), additional_headers=signed(server)) as ws:
        await ws.send("this is not json")
        await ws.send(b"\x00\x01binary")
        await ws.send(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "2",
                    "streamSid": STREAM,
                    "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": "/w=="},
                }
            )
        )
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "9.9.9", "new": 1}))
        await ws.send(start_message(call_sid=call))
        await ws.send(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "3",
                    "streamSid": "MZ" + "9" * 32,
                    "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": "/w=="},
                }
            )
        )
        await ws.send(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "4",
                    "streamSid": STREAM,
                    "media": {"track": "inbound", "chunk": "3", "timestamp": "60", "payload": "%%%"},
                }
            )
        )
        await ws.send('{"event": "start", "broken": ')
        # after all that, the call is alive: the greeting arrives as media frames of whole 160-byte units
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["event"] == "media" and set(message) == {"event", "streamSid", "media"}
        assert message["streamSid"] == STREAM
        import base64

        assert len(base64.b64decode(message["media"]["payload"])) % 160 == 0
        await ws.send(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": "5",
                    "streamSid": STREAM,
                    "stop": {"accountSid": "AC" + "3" * 32, "callSid": call},
                }
            )
        )
    record = await server.wait_record_closed(call)
    assert record.outcome == "completed"
    result = await healthy
    assert result.turns[0].latency_s is not None  # the other call was answered meanwhile


async def test_oversized_message_closes_only_that_stream(server):
    async with websockets.connect(ws_url(server), additional_headers=signed(server), max_size=None) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send("x" * (server.services.settings.max_message_bytes + 10))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1009
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.url + "/healthz")).status_code == 200


async def test_a_flood_of_malformed_messages_closes_the_stream(server):
    async with websockets.connect(ws_url(server), additional_headers=signed(server)) as ws:
        for _ in range(60):
            await ws.send("{nope")
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1008


async def test_call_records_api_needs_the_bearer_token(server, librivox):
    from conftest import API_TOKEN

    result = await SimulatedCall(server.url, AUTH_TOKEN).run([CallerTurn("api", speech_from_wav(librivox["0930"]))])
    await server.wait_record_closed(result.call_sid)
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(f"{server.url}/api/calls/{result.call_sid}")
        wrong = await client.get(f"{server.url}/api/calls/{result.call_sid}", headers={"Authorization": "Bearer nope"})
        record = await client.get(
            f"{server.url}/api/calls/{result.call_sid}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        listing = await client.get(f"{server.url}/api/calls", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    body = record.json()
    assert body["call_sid"] == result.call_sid and body["outcome"] == "completed"
    assert body["turns"][0]["stages_ms"]["first_frame_sent"] is not None
    assert result.call_sid in [c["call_sid"] for c in listing.json()["calls"]]
