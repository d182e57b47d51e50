"""Sarvam speech-to-text and text-to-speech against a local server speaking its REST protocol."""

from __future__ import annotations

import io
import time
import wave

import aiohttp
import httpx
import numpy as np
import pytest

from voxline.audio import mulaw
from voxline.errors import ProviderError
from voxline.fakes.sarvam_server import API_KEY, FakeSarvam
from voxline.providers.sarvam import sarvam_language
from voxline.simulator.voices import speech_from_wav
from voxline.stt.sarvam_stt import SarvamSTT
from voxline.tts.sarvam_tts import SarvamTTS

HINDI_REPLY = "शनिवार को हम सुबह दस बजे से दोपहर दो बजे तक खुले हैं।"


def test_language_codes():
    assert sarvam_language("hi") == "hi-IN" and sarvam_language("ta-IN") == "ta-IN"
    assert sarvam_language("") == "unknown"


async def test_transcription_sends_a_phone_wav_with_the_language_and_reads_devanagari(librivox):
    speech = speech_from_wav(librivox["0880"])
    async with FakeSarvam() as fake, aiohttp.ClientSession() as http:
        text = await SarvamSTT(http, fake.base_url, API_KEY, "saarika:v2.5").transcribe(speech, "hi")
    sent = fake.requests[0]
    assert text == fake.transcript
    assert (sent["model"], sent["language_code"], sent["key"]) == ("saarika:v2.5", "hi-IN", API_KEY)
    with wave.open(io.BytesIO(sent["audio"])) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert abs(w.getnframes() - speech.size) <= 1


async def test_speech_is_asked_at_8khz_and_decoded_from_base64_wav(prompts):
    async with FakeSarvam() as fake, aiohttp.ClientSession() as http:
        fake.speech = speech_from_wav(prompts / "hello-world.wav")
        tts = SarvamTTS(http, fake.base_url, API_KEY, "bulbul:v2", "anushka", "hi")
        audio = await tts.synthesize(HINDI_REPLY)
    assert fake.requests[0]["body"] == {
        "text": HINDI_REPLY,
        "target_language_code": "hi-IN",
        "speaker": "anushka",
        "model": "bulbul:v2",
        "speech_sample_rate": 8000,
    }
    decoded = mulaw.decode(audio)
    assert abs(decoded.size / 8000 - fake.speech.size / 8000) < 0.15  # trimmed, plus a short pause
    # 8 kHz in, 8 kHz out: no resampling, so the samples are the ones sent (μ-law rounding aside)
    assert np.abs(decoded[:4000].astype(np.int32) - fake.speech[:4000].astype(np.int32)).max() < 1200


async def test_errors_rate_limits_and_timeouts(prompts, librivox):
    speech = speech_from_wav(librivox["0880"])
    async with FakeSarvam() as fake, aiohttp.ClientSession() as http:
        fake.speech = speech_from_wav(prompts / "hello-world.wav")
        fake.mode = "rate-limited-once"
        tts = SarvamTTS(http, fake.base_url, API_KEY, "bulbul:v2", "anushka", "hi-IN", retry_window_s=2.0)
        assert await tts.synthesize("नमस्ते")  # a 429 is retried
        with pytest.raises(ProviderError) as unauthorized:
            await SarvamTTS(http, fake.base_url, "sarvam-wrong", "bulbul:v2", "anushka", "hi").synthesize("नमस्ते")
        fake.mode = "server-error"
        started = time.monotonic()
        with pytest.raises(ProviderError) as unavailable:
            await SarvamSTT(http, fake.base_url, API_KEY, "saarika:v2.5", retry_window_s=1.0).transcribe(speech, "hi")
        elapsed = time.monotonic() - started
        fake.mode, fake.slow_s = "slow", 2.0
        with pytest.raises(ProviderError) as slow:
            await SarvamSTT(http, fake.base_url, API_KEY, "saarika:v2.5", timeout_s=0.3, retry_window_s=0.5).transcribe(
                speech, "hi"
            )
    assert [r["path"] for r in fake.requests[:2]] == ["text-to-speech", "text-to-speech"]
    assert unauthorized.value.kind == "401" and "Invalid API key" in str(unauthorized.value)
    assert "sarvam-wrong" not in str(unauthorized.value)
    assert unavailable.value.kind == "503" and 0.5 < elapsed < 2.5
    assert slow.value.kind == "timeout"


@pytest.mark.e2e
async def test_a_hindi_call_on_sarvam_keeps_devanagari_intact(librivox, prompts, tmp_path):
    """The example Hindi agent: Sarvam STT → an OpenAI-compatible LLM → Sarvam TTS, Devanagari all the way."""
    import asyncio
    from pathlib import Path

    from conftest import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, RunningServer
    from voxline.config import Settings
    from voxline.fakes.openai_server import API_KEY as OPENAI_KEY
    from voxline.fakes.openai_server import FakeOpenAI
    from voxline.simulator.caller import CallerTurn, SimulatedCall

    agent_file = Path(__file__).parent.parent / "examples" / "agents" / "sarvam_hindi.toml"
    async with FakeSarvam() as sarvam, FakeOpenAI(reply=HINDI_REPLY) as openai:
        sarvam.speech = speech_from_wav(prompts / "hello-world.wav")
        settings = Settings(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            api_token=API_TOKEN,
            data_dir=tmp_path,
            agent_file=agent_file,
            SARVAM_API_KEY=API_KEY,
            SARVAM_BASE_URL=sarvam.base_url,
            OPENAI_API_KEY=OPENAI_KEY,
            OPENAI_BASE_URL=openai.base_url,
        )
        server = RunningServer(settings)
        await asyncio.to_thread(server.start)
        try:
            result = await SimulatedCall(server.url, AUTH_TOKEN).run(
                [CallerTurn("question", speech_from_wav(librivox["0880"]))]
            )
            record = await server.wait_record_closed(result.call_sid)
            async with httpx.AsyncClient() as http:
                api = await http.get(
                    f"{server.url}/api/calls/{result.call_sid}", headers={"Authorization": f"Bearer {API_TOKEN}"}
                )
        finally:
            await asyncio.to_thread(server.stop)
    agent = server.services.agent
    turn = record.turns[0]
    assert turn.caller_text == sarvam.transcript and turn.agent_text == HINDI_REPLY and not turn.failed
    assert result.turns[0].latency_s is not None
    stt = [r for r in sarvam.requests if r["path"] == "speech-to-text"]
    assert stt and all(r["language_code"] == "hi-IN" and r["model"] == "saarika:v2.5" for r in stt)
    chat = [r for r in openai.requests if "body" in r and "messages" in r["body"]]
    assert chat[0]["body"]["messages"][-1] == {"role": "user", "content": sarvam.transcript}
    spoken = [r["body"] for r in sarvam.requests if r["path"] == "text-to-speech"]
    assert spoken[0]["text"] == agent.greeting  # the fixed phrases, rendered at start-up
    assert all(b["target_language_code"] == "hi-IN" and b["speaker"] == "anushka" for b in spoken)
    assert "".join(b["text"] for b in spoken[6:]).replace(" ", "") == HINDI_REPLY.replace(" ", "")
    assert {"role": "user", "content": sarvam.transcript} in record.history
    assert api.status_code == 200
    body = api.json()
    assert sarvam.transcript in str(body) and HINDI_REPLY in str(body)
