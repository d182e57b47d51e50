"""Bounds and shutdown: admission control, silent callers, long calls, --dev, and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
import websockets

from conftest import AUTH_TOKEN, free_port, twilio_start
from voxline.simulator.caller import CallerTurn, SimulatedCall, wait_until_ready
from voxline.simulator.voices import speech_from_wav
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e

VOXLINE = Path(sys.executable).parent / "voxline"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


async def post_webhook(url: str, call_sid: str, path: str = "/voice-stream") -> str:
    params = {"CallSid": call_sid, "From": "+15005550006", "To": "+15005550001"}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url + path, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url + path, params)}
        )
    response.raise_for_status()
    return response.text


async def test_over_capacity_callers_hear_busy_and_are_hung_up(make_server):
    server = make_server(max_calls=1)
    first = await post_webhook(server.url, "CA" + "1" * 32)
    assert ET.fromstring(first).find("./Connect/Stream") is not None
    second = ET.fromstring(await post_webhook(server.url, "CA" + "2" * 32))
    assert [v.tag for v in second] == ["Play", "Hangup"]
    async with httpx.AsyncClient() as client:
        busy = await client.get(second.find("Play").text)
    from voxline.telephony.recordings import decode_wav

    assert {"busy", "call", "back"} <= words(server.transcribe(decode_wav(busy.content)))
    # a stream for a call admitted elsewhere (a valid credential, no place here) cannot get past the limit either
    ws_url = server.url.replace("http", "ws", 1) + "/media-stream"
    async with websockets.connect(ws_url, additional_headers={"X-Twilio-Signature": sign(AUTH_TOKEN, ws_url)}) as ws:
        await ws.send(twilio_start("CA" + "9" * 32, "MZ" + "9" * 32))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1013


async def test_over_capacity_can_fall_back_to_the_recording_path(make_server):
    server = make_server(max_calls=1, overflow_to_recording=True)
    await post_webhook(server.url, "CA" + "3" * 32)
    overflow = ET.fromstring(await post_webhook(server.url, "CA" + "4" * 32))
    assert [v.tag for v in overflow] == ["Play", "Record"]


async def test_a_silent_caller_is_asked_then_the_call_ends_politely(make_server):
    server = make_server(caller_silence_timeout_s=1.0)
    call = SimulatedCall(server.url, AUTH_TOKEN)
    result = await call.run([], linger_s=20)
    assert result.close_code == 1000
    heard = server.transcribe(result.heard())
    assert {"still", "there"} <= words(heard) and "goodbye" in words(heard), heard
    record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "caller-silent"


async def test_a_call_past_its_maximum_duration_is_ended_with_a_goodbye(make_server):
    server = make_server(max_call_duration_s=1.5)
    result = await SimulatedCall(server.url, AUTH_TOKEN).run([], linger_s=20)
    assert result.close_code == 1000
    assert "goodbye" in words(server.transcribe(result.heard()))
    assert result.messages_received.get("clear") == 1  # the greeting was cut short
    record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "max-duration"


def test_serve_refuses_to_start_without_an_auth_token():
    env = {k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN"}
    done = subprocess.run(
        [str(VOXLINE), "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "TWILIO_AUTH_TOKEN" in done.stdout + done.stderr and "--dev" in done.stdout + done.stderr


async def test_sigterm_lets_the_call_finish_its_turn_then_exits_cleanly(librivox, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "VOXLINE_PUBLIC_URL": url,
        "VOXLINE_DATA_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(VOXLINE), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await wait_until_ready(url, 180)
        call = SimulatedCall(url, AUTH_TOKEN)
        placed = asyncio.create_task(call.run([CallerTurn("last", speech_from_wav(librivox["0880"]))], linger_s=30))
        # wait until the caller has finished speaking, then ask the server to stop
        while not call._mouth or call._mouth[0].sent < len(call._mouth[0].frames) - 1:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        draining = ET.fromstring(await post_webhook(url, "CA" + "5" * 32))
        assert [v.tag for v in draining] == ["Play", "Hangup"]  # no new calls while draining
        result = await placed
        assert result.turns[0].latency_s is not None  # the reply in flight was still heard
        assert "goodbye" in words(server_transcribe(result))
        assert result.close_code == 1000
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        print(log_path.read_text()[-6000:])
    text = log_path.read_text()
    assert "no new calls" in text and "every call has ended" in text
    assert "DEVELOPMENT MODE" not in text


def server_transcribe(result) -> str:
    from voxline.engine import files
    from voxline.providers.pool import ModelPool
    from voxline.stt.whisper import WhisperSTT

    return WhisperSTT(files.whisper_tiny_en_dir(), ModelPool(1), 1).transcribe_blocking(result.heard(), "en")


def test_dev_mode_starts_without_a_token_and_says_so_loudly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN"}
    env.update(VOXLINE_DATA_DIR=str(tmp_path), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [str(VOXLINE), "serve", "--dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "DEVELOPMENT MODE" in output and "NOT authenticated" in output
    assert process.returncode == 0
