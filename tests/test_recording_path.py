"""The recording path end to end: the real server, the simulator playing Twilio's <Record>, real speech."""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import pytest

from conftest import ACCOUNT_SID, AUTH_TOKEN
from voxline.audio.pcm import TELEPHONY_RATE, write_wav
from voxline.simulator.caller import CallerTurn
from voxline.simulator.recorded_call import RecordedCall
from voxline.simulator.voices import speech_from_wav
from voxline.telephony.security import sign

pytestmark = pytest.mark.e2e


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def stored_history(server, call_sid: str) -> list[dict]:
    """The conversation as the call store has it, read on the server's own event loop."""
    return asyncio.run_coroutine_threadsafe(server.services.store.history(call_sid), server.loop).result(10)


def record_verb(twiml: str) -> ET.Element:
    verb = ET.fromstring(twiml).find("Record")
    assert verb is not None, twiml
    return verb


async def test_recorded_conversation_with_real_speech(server, librivox, artifacts):
    turns = [
        CallerTurn("young-man", speech_from_wav(librivox["0880"])),
        CallerTurn("amiable", speech_from_wav(librivox["0930"])),
    ]
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID).run(turns)
    heard = np.concatenate([result.greeting_audio, *[t.reply_audio for t in result.turns]])
    write_wav(artifacts / "recorded_call.wav", heard, TELEPHONY_RATE)

    greeting = server.transcribe(result.greeting_audio)
    assert len(words(greeting) & {"thank", "calling", "sunrise", "dental", "help", "today"}) >= 4, greeting
    record = record_verb(result.turns[0].twiml)
    assert record.attrib == {
        "action": f"{server.url}/voice/recording",
        "method": "POST",
        "timeout": "1",
        "maxLength": "30",
        "playBeep": "false",
        "trim": "trim-silence",
    }

    stored = stored_history(server, result.call_sid)
    assert [m["role"] for m in stored] == ["assistant", "user", "assistant", "user", "assistant"]
    assert {"young", "man"} <= words(stored[1]["content"])
    for turn, reply in zip(result.turns, [stored[2], stored[4]]):
        assert turn.latency_s is not None and turn.latency_s > 1.0  # includes the 1 s silence timeout
        said = words(reply["content"])
        assert len(words(server.transcribe(turn.reply_audio)) & said) / len(said) >= 0.5

    assert result.final_twiml.strip().endswith("<Response />")  # hang-up: nothing more to do
    call = server.record(result.call_sid)
    assert call.path == "recording" and call.outcome == "completed" and call.ended_at is not None
    assert all({"fetch", "stt", "llm", "tts", "total"} <= set(t.stages_ms) for t in call.turns)


async def test_a_recording_that_is_not_ready_at_once_is_retried(server, librivox):
    turn = CallerTurn("late", speech_from_wav(librivox["0930"]))
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID, recording_behaviour="late").run([turn])
    assert result.recording_requests >= 3  # two 404s, then the file
    stored = stored_history(server, result.call_sid)
    assert [m["role"] for m in stored] == ["assistant", "user", "assistant"]


async def test_silent_recording_gets_a_reprompt(server):
    silence = CallerTurn("silence", np.zeros(TELEPHONY_RATE * 2, dtype=np.int16))
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID).run([silence])
    reprompt = server.transcribe(result.turns[0].reply_audio)
    assert {"sorry", "catch"} <= words(reprompt), reprompt
    record_verb(result.turns[0].twiml)  # the call goes on
    assert len(stored_history(server, result.call_sid)) == 1  # only the greeting


async def test_failed_fetch_gets_an_apology_and_the_call_goes_on(server, librivox):
    turn = CallerTurn("unfetchable", speech_from_wav(librivox["0930"]))
    started = time.monotonic()
    result = await RecordedCall(server.url, AUTH_TOKEN, ACCOUNT_SID, recording_behaviour="fail").run([turn])
    apology = server.transcribe(result.turns[0].reply_audio)
    assert {"sorry", "trouble"} <= words(apology), apology
    record_verb(result.turns[0].twiml)
    assert result.recording_requests >= 2  # retried within the window
    assert time.monotonic() - started < 30
    call = server.record(result.call_sid)
    assert any(e["kind"] == "error" and e.get("stage") == "fetch" for e in call.events)


async def test_recording_webhooks_need_a_signature(server):
    params = {"CallSid": "CA" + "7" * 32, "From": "+15005550006", "To": "+15005550001"}
    async with httpx.AsyncClient() as client:
        for path in ("/voice", "/voice/recording"):
            assert (await client.post(server.url + path, data=params)).status_code == 403
        forged = {"X-Twilio-Signature": sign("not-the-token", server.url + "/voice", params)}
        assert (await client.post(server.url + "/voice", data=params, headers=forged)).status_code == 403


async def test_audio_urls_are_unguessable_expire_and_read_nothing_else(server, tmp_path):
    audio = server.services.audio
    token = audio.put(b"\xff" * 1600)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    async with httpx.AsyncClient() as client:
        ok = await client.get(f"{server.url}/audio/{token}.wav")
        assert ok.status_code == 200 and ok.content[:4] == b"RIFF"
        for bad in [
            "../voxline.db",
            "..%2Fvoxline.db",
            "%2e%2e%2fvoxline.db",
            "x" * 32 + ".wav",
            token,
            token + ".txt",
            token[:-1] + "/.wav",
        ]:
            assert (await client.get(f"{server.url}/audio/{bad}")).status_code == 404, bad
        expired = audio.folder / f"{token}.wav"
        old = time.time() - audio.ttl_s - 5
        import os

        os.utime(expired, (old, old))
        assert (await client.get(f"{server.url}/audio/{token}.wav")).status_code == 404
    assert not expired.exists()


async def test_a_failing_hosted_stt_gets_an_apology_not_an_http_500(server, make_server, librivox):
    """VOXLINE_STT=openai with nothing listening at OPENAI_BASE_URL: the caller hears the apology,
    the next <Record> follows, and the failure is recorded (it used to answer Twilio with HTTP 500)."""
    import dataclasses

    from voxline.stt.openai_stt import OpenAICompatibleSTT

    failing = make_server(stack=dataclasses.replace(server.services.stack))
    failing.services.stack.stt = OpenAICompatibleSTT(
        failing.services.http, "http://127.0.0.1:9/v1", "sk-test", "whisper-1", timeout_s=1.0, retry_window_s=0.5
    )
    turn = CallerTurn("unheard", speech_from_wav(librivox["0930"]))
    result = await RecordedCall(failing.url, AUTH_TOKEN, ACCOUNT_SID).run([turn])
    apology = server.transcribe(result.turns[0].reply_audio)  # with the embedded STT
    assert {"sorry", "trouble"} <= words(apology), apology
    record_verb(result.turns[0].twiml)  # the call goes on
    call = failing.record(result.call_sid)
    [error] = [e for e in call.events if e["kind"] == "error"]
    assert error["stage"] == "stt" and error["error_kind"] == "connection", error
    assert len(stored_history(failing, result.call_sid)) == 1  # only the greeting: nothing was answered
