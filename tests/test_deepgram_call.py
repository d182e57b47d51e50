"""Calls whose every stage is a hosted provider (local servers speaking their wire protocols):
Deepgram's live STT, an OpenAI-compatible LLM, ElevenLabs; and what a caller hears when the
STT socket fails (a fallback, or an apology and the call goes on)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conftest import ACCOUNT_SID, AUTH_TOKEN, RunningServer
from voxline.audio import mulaw
from voxline.config import Settings
from voxline.fakes.deepgram_server import API_KEY as DG_KEY
from voxline.fakes.deepgram_server import FakeDeepgram
from voxline.fakes.elevenlabs_server import API_KEY as XI_KEY
from voxline.fakes.elevenlabs_server import FakeElevenLabs
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

pytestmark = pytest.mark.e2e

AGENT = """
name = "hosted"
greeting = "Thank you for calling."
system_prompt = "You are a receptionist."
[stt]
provider = "deepgram"
endpointing_ms = {endpointing}
{fallback}
[vad]
early_stt_frames = {early}
[llm]
provider = "openai"
model = "gpt-test"
[voice]
engine = "elevenlabs"
voice = "voice123"
model = "eleven_flash_v2_5"
{voice_fallback}
"""


class Providers:
    def __init__(self, deepgram: FakeDeepgram, openai: FakeOpenAI, eleven: FakeElevenLabs) -> None:
        self.deepgram, self.openai, self.eleven = deepgram, openai, eleven

    def server(
        self, tmp_path, endpointing: int = 300, early: int = 5, fallback: str = "", voice_fallback: str = ""
    ) -> RunningServer:
        agent = tmp_path / "agent.toml"
        agent.write_text(
            AGENT.format(endpointing=endpointing, early=early, fallback=fallback, voice_fallback=voice_fallback)
        )
        settings = Settings(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            data_dir=tmp_path / "data",
            agent_file=agent,
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=self.openai.base_url,
            ELEVENLABS_API_KEY=XI_KEY,
            ELEVENLABS_BASE_URL=self.eleven.base_url,
            DEEPGRAM_API_KEY=DG_KEY,
            DEEPGRAM_BASE_URL=self.deepgram.base_url,
        )
        return RunningServer(settings)


@pytest.fixture
async def providers(prompts):
    async with FakeDeepgram() as deepgram, FakeOpenAI() as openai, FakeElevenLabs() as eleven:
        eleven.speech = speech_from_wav(prompts / "hello-world.wav")
        yield Providers(deepgram, openai, eleven)


async def run_call(server: RunningServer, turns: list[CallerTurn]):
    await asyncio.to_thread(server.start)
    try:
        result = await SimulatedCall(server.url, AUTH_TOKEN).run(turns)
        record = await server.wait_record_closed(result.call_sid)
        async with httpx.AsyncClient() as http:
            server.metrics_text = (await http.get(f"{server.url}/metrics")).text
    finally:
        await asyncio.to_thread(server.stop)
    return result, record


async def test_a_call_on_deepgram_openai_and_elevenlabs(providers, librivox, tmp_path, caplog):
    speech = speech_from_wav(librivox["0880"])
    server = providers.server(tmp_path)
    result, record = await run_call(server, [CallerTurn("question", speech)])
    turn = record.turns[0]
    assert turn.caller_text == providers.deepgram.transcript and turn.agent_text == providers.openai.reply
    assert not turn.failed and result.turns[0].latency_s is not None
    # One socket: opened when the webhook was answered, claimed by the stream, closed with the call.
    assert len(providers.deepgram.connections) == 1 and len(server.services.stack.streams) == 0
    assert f"STT socket opening for call {result.call_sid}" in caplog.text
    assert f"STT socket for call {result.call_sid} claimed" in caplog.text
    socket = providers.deepgram.connections[0]
    assert mulaw.encode(speech)[1600:8000] in bytes(socket["audio"])  # the caller's μ-law as Twilio sent it
    assert socket["controls"][-1] == "CloseStream" and "Finalize" in socket["controls"]
    # Transcribed while the caller spoke: Finalize goes at the caller's pause (5 silent frames) and
    # the final text is back about 100 ms after the caller's last word, before the 300 ms silence
    # window closes; the session takes it the moment the turn is detected.
    answered = [at for at, m in zip(socket["sent_at"], socket["sent"]) if m.get("from_finalize")][-1]
    ready_ms = (answered - result.turns[0].speech_end) * 1000
    print(f"final transcript {ready_ms:.0f} ms after the caller's last speech frame; stages {turn.stages_ms}")
    assert ready_ms < 250, ready_ms
    assert turn.stages_ms["stt_final"] - turn.stages_ms["turn_detected"] < 20, turn.stages_ms
    chat = [r for r in providers.openai.requests if "body" in r and "messages" in r["body"]]
    assert chat[0]["body"]["messages"][-1] == {"role": "user", "content": providers.deepgram.transcript}
    assert " ".join(r["body"]["text"] for r in providers.eleven.requests[6:]) == providers.openai.reply
    # The greeting was rendered at start-up (a miss) and cached; the reply's clauses were misses too.
    assert 'voxline_tts_cache_lookups_total{result="miss"}' in server.metrics_text


async def test_deepgrams_endpoint_ends_the_turn_before_the_silence_window(providers, prompts, tmp_path):
    server = providers.server(tmp_path, endpointing=100, early=0)
    providers.deepgram.transcript = "Hello world."
    result, record = await run_call(server, [CallerTurn("hello", speech_from_wav(prompts / "hello-world.wav"))])
    turn = record.turns[0]
    assert turn.caller_text == "Hello world." and turn.agent_text == providers.openai.reply
    assert any(m.get("speech_final") for m in providers.deepgram.connections[0]["sent"])
    # ended by speech_final ~100 ms (plus a frame or two) after the last voiced frame, not after 300 ms
    assert turn.stages_ms["turn_detected"] < 250, turn.stages_ms
    assert turn.stages_ms["stt_final"] - turn.stages_ms["turn_detected"] < 20  # no Finalize round trip needed


async def test_a_failed_socket_falls_back_to_transcribing_the_kept_audio(providers, librivox, tmp_path):
    server = providers.server(tmp_path, fallback='fallback = "openai"\nfallback_model = "whisper-1"')
    providers.deepgram.mode = "drop"  # closes mid-utterance, then refuses every new socket with 503
    providers.openai.transcript = "Do you open on Saturday?"
    speech = speech_from_wav(librivox["0880"])
    result, record = await run_call(server, [CallerTurn("question", speech)])
    turn = record.turns[0]
    assert turn.caller_text == "Do you open on Saturday?" and turn.agent_text == providers.openai.reply
    assert not turn.failed
    print("fallback turn stages", turn.stages_ms)
    assert turn.stages_ms["stt_final"] < 5000, turn.stages_ms  # the socket's retries are bounded (3 s window)
    fallback = next(e for e in record.events if e["kind"] == "fallback")
    assert (fallback["stage"], fallback["provider"], fallback["error_kind"]) == ("stt", "deepgram", "503")
    sent = [r for r in providers.openai.requests if r.get("path") == "transcriptions"]
    # The whole utterance the session kept: the speech, and the silence until the turn ended (with no
    # early transcript back, at most [turns] wait_for_text_ms).
    assert 0 <= len(sent[0]["audio"]) - 44 - speech.size * 2 < 8000 * 2 * 1.5


async def test_without_a_fallback_the_caller_hears_an_apology_and_the_call_goes_on(providers, librivox, tmp_path):
    server = providers.server(tmp_path)
    providers.deepgram.mode = "drop"
    call = SimulatedCall(server.url, AUTH_TOKEN)

    async def recover_after_the_failed_turn():
        while not ((record := server.record(call.call_sid)) and record.turns):
            await asyncio.sleep(0.05)
        providers.deepgram.mode = "ok"

    await asyncio.to_thread(server.start)
    try:
        recovering = asyncio.create_task(recover_after_the_failed_turn())
        result = await call.run(
            [
                CallerTurn("first", speech_from_wav(librivox["0880"])),
                CallerTurn("second", speech_from_wav(librivox["0930"])),
            ]
        )
        await recovering
        record = await server.wait_record_closed(result.call_sid)
    finally:
        await asyncio.to_thread(server.stop)
    first, second = record.turns
    assert first.failed and first.agent_text == "" and "Sorry" in first.heard_text
    assert any(e["kind"] == "error" and e.get("stage") == "stt" and e.get("error_kind") == "503" for e in record.events)
    assert result.turns[0].reply_audible_at is not None  # the apology was played
    assert not second.failed and second.caller_text == providers.deepgram.transcript
    assert second.agent_text == providers.openai.reply
    assert record.outcome == "completed"


async def test_a_failing_voice_hands_the_reply_to_its_fallback(providers, librivox, prompts, tmp_path):
    server = providers.server(
        tmp_path, voice_fallback='fallback = "openai"\nfallback_model = "tts-1"\nfallback_voice = "alloy"'
    )
    providers.openai.speech = speech_from_wav(prompts / "hello-world.wav")
    await asyncio.to_thread(server.start)  # the fixed phrases are rendered by ElevenLabs
    providers.eleven.mode = "unauthorized"  # then the key is revoked
    try:
        result = await SimulatedCall(server.url, AUTH_TOKEN).run([CallerTurn("q", speech_from_wav(librivox["0880"]))])
        record = await server.wait_record_closed(result.call_sid)
    finally:
        await asyncio.to_thread(server.stop)
    turn = record.turns[0]
    assert turn.agent_text == providers.openai.reply and not turn.failed
    assert result.turns[0].reply_audible_at is not None
    spoken = [r["body"]["input"] for r in providers.openai.requests if r.get("path") == "speech"]
    assert " ".join(spoken) == providers.openai.reply
    events = [e for e in record.events if e["kind"] == "fallback"]
    assert events and all((e["stage"], e["provider"], e["error_kind"]) == ("tts", "elevenlabs", "401") for e in events)
