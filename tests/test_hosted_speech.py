"""Hosted STT and TTS clients against local servers speaking the providers' wire protocols."""

from __future__ import annotations

import asyncio
import io
import wave

import aiohttp
import numpy as np
import pytest

from voxline.audio import mulaw
from voxline.errors import ProviderError
from voxline.fakes.elevenlabs_server import API_KEY as XI_KEY
from voxline.fakes.elevenlabs_server import FakeElevenLabs
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.simulator.voices import speech_from_wav
from voxline.stt.openai_stt import OpenAICompatibleSTT
from voxline.tts.hosted_tts import ElevenLabsTTS, OpenAICompatibleTTS


async def test_openai_transcription_sends_a_phone_wav_and_reads_the_text(librivox):
    speech = speech_from_wav(librivox["0880"])
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        stt = OpenAICompatibleSTT(http, fake.base_url, API_KEY, "whisper-1")
        assert await stt.transcribe(speech, "en") == fake.transcript
        with pytest.raises(ProviderError) as error:
            await OpenAICompatibleSTT(http, fake.base_url, "sk-bad", "whisper-1").transcribe(speech, "en")
    sent = fake.requests[0]
    assert (sent["model"], sent["language"]) == ("whisper-1", "en")
    with wave.open(io.BytesIO(sent["audio"])) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert abs(w.getnframes() - speech.size) <= 1
    assert error.value.kind == "401" and "sk-bad" not in str(error.value)


async def test_elevenlabs_returns_phone_ready_ulaw_and_retries_a_rate_limit(prompts):
    async with FakeElevenLabs() as fake, aiohttp.ClientSession() as http:
        fake.speech = speech_from_wav(prompts / "hello-world.wav")
        fake.mode = "rate-limited-once"
        tts = ElevenLabsTTS(http, fake.base_url, XI_KEY, "voice123", "eleven_flash_v2_5")
        audio = await tts.synthesize("Hello world.")
        fake.mode = "unauthorized"
        with pytest.raises(ProviderError) as error:
            await tts.synthesize("Hello again.")
    assert audio == mulaw.encode(fake.speech)  # no transcoding at all
    assert len(fake.requests) == 3
    assert fake.requests[1]["query"] == {"output_format": "ulaw_8000"}
    assert fake.requests[1]["body"] == {"text": "Hello world.", "model_id": "eleven_flash_v2_5"}
    assert fake.requests[1]["voice_id"] == "voice123" and fake.requests[1]["key"] == XI_KEY
    assert error.value.kind == "401" and "Invalid API key" in str(error.value)


async def test_openai_speech_pcm_is_resampled_for_the_phone(prompts):
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.speech = speech_from_wav(prompts / "hello-world.wav")
        audio = await OpenAICompatibleTTS(http, fake.base_url, API_KEY, "tts-1", "alloy").synthesize("Hello world.")
    assert fake.requests[0]["body"] == {
        "model": "tts-1",
        "input": "Hello world.",
        "voice": "alloy",
        "response_format": "pcm",
    }
    duration = len(audio) / 8000
    assert abs(duration - fake.speech.size / 8000) < 0.15  # trimmed, plus a short trailing pause
    assert np.abs(mulaw.decode(audio).astype(np.int32)).max() > 3000


@pytest.mark.e2e
async def test_a_call_with_every_stage_on_hosted_providers(librivox, prompts, tmp_path):
    from conftest import ACCOUNT_SID, AUTH_TOKEN, RunningServer
    from voxline.config import Settings
    from voxline.fakes.elevenlabs_server import FakeElevenLabs
    from voxline.simulator.caller import CallerTurn, SimulatedCall

    async with FakeOpenAI() as openai, FakeElevenLabs() as eleven:
        eleven.speech = speech_from_wav(prompts / "hello-world.wav")
        # Without speculation: the fake STT returns the whole transcript at the caller's first short
        # pause, and a reply started there and dropped 50 ms later may already have sent its first
        # piece to the TTS, which would make the pieces below depend on timing.
        from importlib import resources

        front_desk = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
        agent_file = tmp_path / "no-speculation.toml"
        agent_file.write_text(front_desk + "\n[turns]\nspeculate = false\n", encoding="utf-8")
        settings = Settings(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            data_dir=tmp_path,
            agent_file=agent_file,
            stt="openai",
            stt_model="whisper-1",
            llm="openai",
            llm_model="gpt-test",
            tts="elevenlabs",
            tts_model="eleven_flash_v2_5",
            tts_voice="voice123",
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=openai.base_url,
            ELEVENLABS_API_KEY=XI_KEY,
            ELEVENLABS_BASE_URL=eleven.base_url,
        )
        server = RunningServer(settings)
        await asyncio.to_thread(server.start)
        try:
            result = await SimulatedCall(server.url, AUTH_TOKEN).run(
                [CallerTurn("q", speech_from_wav(librivox["0880"]))]
            )
            record = await server.wait_record_closed(result.call_sid)
        finally:
            await asyncio.to_thread(server.stop)
    turn = record.turns[0]
    assert turn.caller_text == openai.transcript and turn.agent_text == openai.reply and not turn.failed
    assert result.turns[0].latency_s is not None
    chat = [r for r in openai.requests if "body" in r and "messages" in r["body"]]
    assert chat[0]["body"]["messages"][-1] == {"role": "user", "content": openai.transcript}
    transcriptions = [r for r in openai.requests if r.get("path") == "transcriptions"]
    # only early transcriptions at the caller's pauses: no once-a-second partials for prefill (a hosted
    # LLM gains nothing from it), which would add two more for these 2.8 s of speech
    assert 1 <= len(transcriptions) <= 2
    spoken = [r["body"]["text"] for r in eleven.requests]
    assert spoken[0] == server.services.agent.greeting  # fixed phrases pre-rendered at start-up
    assert " ".join(spoken[6:]) == openai.reply  # the reply, synthesized piece by piece
