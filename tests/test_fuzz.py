"""Property-based fuzzing of the media stream and the webhooks.

Arbitrary sequences of valid, mutated and malformed Twilio messages never crash the server,
never leave a call, a task or a file descriptor behind, and a healthy call alongside is answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import AUTH_TOKEN
from voxline.access.credentials import PARAMETER, StreamCredentials
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e

STREAM = "MZ" + "f" * 32
CALL = "CA" + "e" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
stream_sids = st.sampled_from([STREAM, "MZ" + "0" * 32, "", "x"])


def valid(event: str, sid: str, data) -> dict:
    seq = str(data.draw(st.integers(1, 10_000)))
    if event == "connected":
        return {
            "event": "connected",
            "protocol": "Call",
            "version": data.draw(st.sampled_from(["1.0.0", "0.2.0", "9"])),
        }
    if event == "start":
        call = "CA" + format(data.draw(st.integers(0, 2**128 - 1)), "032x")
        params = data.draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
        if data.draw(st.integers(0, 3)):  # mostly a call its webhook admitted, sometimes not
            params[PARAMETER] = StreamCredentials(AUTH_TOKEN).issue(call)
        return {
            "event": "start",
            "sequenceNumber": seq,
            "streamSid": sid,
            "start": {
                "accountSid": "AC" + "1" * 32,
                "streamSid": sid,
                "callSid": call,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
        }
    if event == "media":
        payload = base64.b64encode(data.draw(st.binary(max_size=480))).decode()
        return {
            "event": "media",
            "sequenceNumber": seq,
            "streamSid": sid,
            "media": {
                "track": data.draw(st.sampled_from(["inbound", "outbound", "x"])),
                "chunk": seq,
                "timestamp": seq,
                "payload": payload,
            },
        }
    if event == "mark":
        return {
            "event": "mark",
            "sequenceNumber": seq,
            "streamSid": sid,
            "mark": {"name": data.draw(st.text(max_size=10))},
        }
    if event == "dtmf":
        return {
            "event": "dtmf",
            "sequenceNumber": seq,
            "streamSid": sid,
            "dtmf": {"track": "inbound_track", "digit": data.draw(st.sampled_from(list("0123456789*#")))},
        }
    return {"event": "stop", "sequenceNumber": seq, "streamSid": sid, "stop": {"accountSid": "AC1", "callSid": CALL}}


def mutate(message: dict, data) -> dict:
    message = json.loads(json.dumps(message))
    key = data.draw(st.sampled_from(sorted(message)))
    if data.draw(st.booleans()):
        del message[key]
    else:
        message[key] = data.draw(json_values)
    return message


@st.composite
def frames(draw):
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "json", "text", "binary"]))
    if kind == "binary":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values))
    message = valid(
        draw(st.sampled_from(["connected", "start", "media", "media", "mark", "dtmf", "stop"])),
        draw(stream_sids),
        draw(st.data()),
    )
    return json.dumps(mutate(message, draw(st.data())) if kind == "mutated" else message)


async def send_all(url: str, messages: list) -> None:
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, url)}
    try:
        async with websockets.connect(url, additional_headers=headers) as ws:
            for message in messages:
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass  # the server may close a stream it finds hopeless: that is allowed


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle(server, baseline_tasks: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not server.services.registry.active and server.task_count() <= baseline_tasks:
            return
        await asyncio.sleep(0.1)


def test_arbitrary_message_sequences_never_hurt_the_server(server, librivox):
    ws_url = server.url.replace("http", "ws", 1) + "/media-stream"
    asyncio.run(asyncio.sleep(0))
    baseline_tasks = server.task_count()
    baseline_fds = open_fds()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(frames(), min_size=1, max_size=15))
    def fuzz(messages):
        asyncio.run(send_all(ws_url, messages))

    fuzz()

    async def afterwards():
        await settle(server, baseline_tasks)
        return await SimulatedCall(server.url, AUTH_TOKEN).run(
            [CallerTurn("healthy", speech_from_wav(librivox["0930"]))]
        )

    result = asyncio.run(afterwards())
    assert result.turns[0].latency_s is not None
    asyncio.run(settle(server, baseline_tasks))
    assert not server.services.registry.active
    assert server.task_count() <= baseline_tasks
    assert open_fds() <= baseline_fds + 5


form_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
recording_urls = st.sampled_from(
    ["", "not a url", "http://127.0.0.1:9/Recordings/RE1", "ftp://127.0.0.1/x", "http://[::1", "http://127.0.0.1:1/%%%"]
)


def test_arbitrary_webhook_requests_get_clean_answers(server):
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        path=st.sampled_from(["/voice-stream", "/voice", "/voice/recording"]),
        params=st.dictionaries(
            st.sampled_from(["CallSid", "From", "To", "Digits", "RecordingDuration", "CallStatus", "Extra"]),
            form_values,
            max_size=6,
        ),
        recording_url=recording_urls,
        signed=st.booleans(),
    )
    def fuzz(path, params, recording_url, signed):
        params = {**params, "RecordingUrl": recording_url}
        headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, server.url + path, params)} if signed else {}
        response = httpx.post(server.url + path, data=params, headers=headers, timeout=30)
        assert response.status_code == (200 if signed else 403), response.text
        if signed:
            assert response.text.startswith("<?xml")

    fuzz()
    assert httpx.get(server.url + "/healthz").status_code == 200
