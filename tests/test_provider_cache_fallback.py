"""The TTS cache (memory LRU + disk), per-stage fallbacks, provider selection and the example agents."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from voxline.config import Settings, effective_agent, load_agent
from voxline.engine.fallback import FallbackChat, FallbackTTS, report_fallbacks_to
from voxline.errors import ProviderError
from voxline.fakes.elevenlabs_server import API_KEY as XI_KEY
from voxline.fakes.elevenlabs_server import FakeElevenLabs
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.llm.events import texts
from voxline.llm.openai_compat import OpenAICompatibleChat
from voxline.simulator.voices import speech_from_wav
from voxline.tts.cache import AudioCache, CachedTTS
from voxline.tts.hosted_tts import ElevenLabsTTS

EXAMPLES = Path(__file__).parent.parent / "examples" / "agents"


async def test_repeated_phrases_are_synthesized_once_and_survive_a_restart(prompts, tmp_path):
    async with FakeElevenLabs() as fake, aiohttp.ClientSession() as http:
        fake.speech = speech_from_wav(prompts / "hello-world.wav")
        eleven = ElevenLabsTTS(http, fake.base_url, XI_KEY, "voice123", "eleven_flash_v2_5")
        cache = AudioCache(1 << 20, tmp_path / "tts-cache")
        tts = CachedTTS(eleven, cache, "en")
        first = await tts.synthesize("Hello world.")
        again = await tts.synthesize("Hello world.")
        other = await tts.synthesize("Something else.")
        assert len(fake.requests) == 2 and first == again and other
        assert (cache.hits, cache.misses) == (1, 2)
        # A new process: an empty memory, the same folder.
        restarted = CachedTTS(eleven, AudioCache(1 << 20, tmp_path / "tts-cache"), "en")
        assert await restarted.synthesize("Hello world.") == first
        assert len(fake.requests) == 2
        # Another voice or language is another entry.
        assert await CachedTTS(eleven, cache, "hi").synthesize("Hello world.") == first
        assert len(fake.requests) == 3
    files = sorted((tmp_path / "tts-cache").rglob("*.ulaw"))
    assert len(files) == 3 and not list((tmp_path / "tts-cache").rglob(".tmp-*"))
    assert files[0].parent.name == files[0].name[:2]  # content-addressed


async def test_the_memory_cache_is_bounded_in_bytes():
    cache = AudioCache(max_bytes=1000, folder=None)
    for i in range(5):
        await cache.put(f"k{i}", bytes(400))
    assert cache.memory_bytes <= 1000
    assert await cache.get("k0") is None and await cache.get("k4") == bytes(400)  # least recently used went first


async def test_the_disk_cache_is_kept_under_its_size_and_age(tmp_path):
    import os
    import time

    cache = AudioCache(max_bytes=10_000, folder=tmp_path)
    for i in range(6):
        await cache.put(f"{i:02d}" + "f" * 62, bytes(1000))
    await asyncio.sleep(0.2)  # the disk writes run off the loop
    files = sorted(tmp_path.glob("*/*.ulaw"))
    assert len(files) == 6
    now = time.time()
    for age_days, path in zip((40, 5, 4, 3, 2, 1), files):  # the first one unused for 40 days
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    assert cache.prune_disk(max_bytes=3500, max_age_s=30 * 86400) == 3  # too old, then oldest over size
    assert sorted(tmp_path.glob("*/*.ulaw")) == files[3:]
    assert cache.prune_disk(max_bytes=3500, max_age_s=30 * 86400) == 0


class _Failing:
    name = "broken"
    prefills_locally = False
    invents_arguments = False

    async def synthesize(self, text: str) -> bytes:
        raise ProviderError("broken", "503", "Service unavailable")

    async def stream(self, messages, max_tokens, temperature, tools=None):
        raise ProviderError("broken", "503", "Service unavailable")
        yield ""  # pragma: no cover


async def test_fallbacks_take_the_turn_and_report_it_to_the_call(prompts):
    used: list[tuple[str, str, str]] = []
    async with FakeElevenLabs() as eleven_fake, FakeOpenAI() as openai_fake, aiohttp.ClientSession() as http:
        eleven_fake.speech = speech_from_wav(prompts / "hello-world.wav")

        async def call() -> tuple[bytes, str]:
            report_fallbacks_to(lambda stage, exc, name: used.append((stage, exc.kind, name)))
            tts = FallbackTTS(_Failing(), ElevenLabsTTS(http, eleven_fake.base_url, XI_KEY, "v", "m"))
            llm = FallbackChat(_Failing(), OpenAICompatibleChat(http, openai_fake.base_url, API_KEY, "gpt-test"))
            audio = await tts.synthesize("Hello world.")
            reply = "".join([t async for t in texts(llm.stream([{"role": "user", "content": "hi"}], 40, 0.0))])
            return audio, reply

        audio, reply = await asyncio.create_task(call())
    assert audio and reply == openai_fake.reply
    assert used == [("tts", "503", "elevenlabs:v"), ("llm", "503", "openai:gpt-test")]


def test_selection_by_environment_and_secrets_stay_secret(tmp_path):
    settings = Settings(
        stt="deepgram",
        tts="sarvam",
        DEEPGRAM_API_KEY="dg-secret",
        SARVAM_API_KEY="sv-secret",
        DEEPGRAM_BASE_URL="ws://127.0.0.1:9",
        SARVAM_BASE_URL="http://127.0.0.1:9",
        data_dir=tmp_path,
    )
    agent = effective_agent(load_agent(None), settings)
    assert (agent.stt.provider, agent.stt.model) == ("deepgram", "nova-3")
    assert (agent.voice.engine, agent.voice.model, agent.voice.voice) == ("sarvam", "bulbul:v2", "anushka")
    assert "dg-secret" not in repr(settings) and "sv-secret" not in repr(settings)
    assert settings.deepgram_base_url == "ws://127.0.0.1:9"
    with pytest.raises(ValueError):
        effective_agent(
            load_agent(None).model_copy(update={"stt": agent.stt.model_copy(update={"fallback": "deepgram"})}),
            Settings(data_dir=tmp_path),
        )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_example_agent_file_loads(path, tmp_path):
    agent = effective_agent(load_agent(path), Settings(data_dir=tmp_path))
    assert agent.greeting and agent.system_prompt
    assert not re.search(
        r"(?im)^\s*\w*(api_key|auth_token|secret)\w*\s*=", path.read_text()
    )  # secrets: environment only


def test_the_examples_cover_every_hosted_provider():
    agents = [load_agent(path) for path in EXAMPLES.glob("*.toml")]
    assert {a.stt.provider for a in agents} >= {"deepgram", "sarvam", "openai"}
    assert {a.voice.engine for a in agents} >= {"elevenlabs", "sarvam", "openai"}
    assert {a.llm.provider for a in agents} >= {"openai"}
