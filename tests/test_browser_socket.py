"""The softphone's socket and pages without a browser: who may use them, and bad input.

The softphone speaks Twilio's Media Streams protocol on /phone-stream, so these tests drive it
with the same messages a Twilio call sends; only the access rule differs (the API token in
``start.customParameters``, or --dev without a token) and the extra ``voxline.*`` messages.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, RunningServer
from voxline.access.credentials import PARAMETER, StreamCredentials
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e

STREAM = "MZ" + "4" * 32
TWILIO_EVENTS = {"media", "mark", "clear"}


def phone_url(server) -> str:
    return server.url.replace("http", "ws", 1) + "/phone-stream"


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(call_sid: str, stream_sid: str = STREAM, **parameters: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "accountSid": "AC" + "5" * 32,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"From": "softphone", **parameters},
            },
        }
    )


def new_call_sid() -> str:
    return "CA" + f"{time.time_ns():032x}"[-32:]


async def receive_until(ws, wanted: str, timeout_s: float = 15.0) -> list[dict]:
    """Messages up to and including the first of event ``wanted``."""
    messages: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        messages.append(message)
        if message["event"] == wanted:
            return messages


async def closed_with(ws) -> tuple[int | None, str | None]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


@pytest.fixture
def server_with(server, tmp_path):
    """A server sharing the loaded models, with its own API token and --dev setting."""
    from voxline.config import Settings

    started: list[RunningServer] = []

    def make(api_token: str, dev_mode: bool) -> RunningServer:
        settings = Settings(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            api_token=api_token,
            dev_mode=dev_mode,
            data_dir=tmp_path / f"data{len(started)}",
        )
        running = RunningServer(settings, stack=server.services.stack)
        running.start()
        started.append(running)
        deadline = time.monotonic() + 30
        while True:  # with the models already loaded, start() returns before the port is open
            try:
                httpx.get(running.url + "/healthz", timeout=2)
                return running
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    yield make
    for running in started:
        running.stop()


async def test_with_an_api_token_the_socket_needs_it(server):
    for parameters in ({}, {"token": "not-the-token"}):
        call_sid = new_call_sid()
        async with websockets.connect(phone_url(server)) as ws:
            await ws.send(connected())
            await ws.send(start(call_sid, **parameters))
            assert await closed_with(ws) == (1008, "invalid token")
        assert server.record(call_sid) is None  # no call was started

    call_sid = new_call_sid()
    async with websockets.connect(phone_url(server)) as ws:  # no X-Twilio-Signature: a browser cannot send one
        await ws.send(connected())
        await ws.send(start(call_sid, token=API_TOKEN))
        messages = await receive_until(ws, "mark")
        extra = [m for m in messages if m["event"].startswith("voxline.")]
        assert extra == [
            {
                "event": "voxline.call",
                "streamSid": STREAM,
                "callSid": call_sid,
                "agent": server.services.agent.name,
                "greeting": server.services.agent.greeting,
            }
        ]
        assert {m["event"] for m in messages if m not in extra} == {"media", "mark"}
        await ws.send(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": "9",
                    "streamSid": STREAM,
                    "stop": {"accountSid": "AC" + "5" * 32, "callSid": call_sid},
                }
            )
        )
    record = await server.wait_record_closed(call_sid)
    assert record.path == "softphone" and record.caller == "softphone" and record.outcome == "completed"

    async with httpx.AsyncClient() as client:
        phone = await client.get(server.url + "/phone")
        dashboard = await client.get(server.url + "/dashboard")
    assert phone.status_code == 200 and 'data-token-required="true"' in phone.text
    assert dashboard.status_code == 200


async def test_twilio_stream_sends_only_twilio_messages(server):
    url = server.url.replace("http", "ws", 1) + "/media-stream"
    async with websockets.connect(url, additional_headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url)}) as ws:
        await ws.send(connected())
        call_sid = new_call_sid()  # a phone call: its webhook issued the stream's credential
        await ws.send(start(call_sid, **{PARAMETER: StreamCredentials(AUTH_TOKEN).issue(call_sid)}))
        messages = await receive_until(ws, "mark")
        await asyncio.sleep(1.0)  # the softphone would have reported by now
        while True:
            try:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
            except TimeoutError:
                break
    assert {m["event"] for m in messages} <= TWILIO_EVENTS


async def test_without_a_token_the_softphone_is_off_unless_dev(server_with):
    off = server_with(api_token="", dev_mode=False)
    async with httpx.AsyncClient() as client:
        assert (await client.get(off.url + "/phone")).status_code == 404
        assert (await client.get(off.url + "/dashboard")).status_code == 404
        assert (await client.get(off.url + "/api/calls")).status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(phone_url(off)):
            pass
    assert refused.value.response.status_code == 404

    dev = server_with(api_token="", dev_mode=True)
    async with httpx.AsyncClient() as client:
        phone = await client.get(dev.url + "/phone")
        assert (await client.get(dev.url + "/dashboard")).status_code == 404  # the dashboard needs the token
    assert phone.status_code == 200 and 'data-token-required="false"' in phone.text

    call_sid = new_call_sid()
    async with websockets.connect(phone_url(dev), origin=dev.url) as ws:
        await ws.send(connected())
        await ws.send(start(call_sid))  # no token needed in --dev
        messages = await receive_until(ws, "media")
        messages += (
            await receive_until(ws, "voxline.call") if "voxline.call" not in {m["event"] for m in messages} else []
        )
        assert [m["callSid"] for m in messages if m["event"] == "voxline.call"] == [call_sid]
    assert (await dev.wait_record_closed(call_sid)).path == "softphone"

    # Without a token, another site's page cannot use the visitor's browser to reach the socket.
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(phone_url(dev), origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 404


async def test_bad_messages_are_handled_like_on_the_media_stream(server):
    call_sid = new_call_sid()
    async with websockets.connect(phone_url(server)) as ws:
        await ws.send("this is not json")
        await ws.send(b"\x00\x01binary")
        await ws.send(json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "/w=="}}))  # before start
        await ws.send(connected())
        await ws.send(start(call_sid, token=API_TOKEN))
        await ws.send(json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "not base64!"}}))
        await ws.send(json.dumps({"event": "media", "streamSid": "MZ" + "9" * 32, "media": {"payload": "/w=="}}))
        await ws.send(json.dumps({"event": "nonsense"}))
        messages = await receive_until(ws, "mark")  # the call goes on: the greeting arrives
        assert "media" in {m["event"] for m in messages}
        for _ in range(60):  # then a flood of garbage closes this stream, as on /media-stream
            await ws.send("{")
        assert await closed_with(ws) == (1008, "too many malformed messages")
    record = await server.wait_record_closed(call_sid)
    assert record.path == "softphone" and record.outcome == "protocol-error"

    # The server is unharmed: the next softphone call works.
    async with websockets.connect(phone_url(server)) as ws:
        await ws.send(connected())
        await ws.send(start(new_call_sid(), token=API_TOKEN))
        assert {m["event"] for m in await receive_until(ws, "media")} <= {"voxline.call", "media"}
