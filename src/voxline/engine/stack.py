"""The voice stack: the STT, LLM and TTS an agent uses, loaded once per process and shared.

Each model gets its own one-thread lane, so a long LLM generation never queues a
transcription behind it, and no model is ever run by two threads at once.
"""

from __future__ import annotations

import logging
import time

import httpx
from dataclasses import dataclass
from functools import partial
from typing import Callable

from voxline.config import AgentConfig, Settings, VadSettings
from voxline.engine import files
from voxline.engine.pool import ModelPool
from voxline.llm.base import LanguageModel
from voxline.stt.base import SpeechToText
from voxline.tts.base import TextToSpeech
from voxline.turns.vad import SileroVad, VoiceActivityDetector, WebRtcVad

log = logging.getLogger(__name__)


@dataclass
class VoiceStack:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    make_vad: Callable[[], VoiceActivityDetector]
    pools: list[ModelPool]
    fixed_phrases: dict[str, bytes]

    async def speak(self, text: str) -> bytes:
        """Synthesize, reusing the pre-rendered audio of fixed phrases (greeting, re-prompt, apology)."""
        if text in self.fixed_phrases:
            return self.fixed_phrases[text]
        return await self.tts.synthesize(text)

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown()


def vad_factory(vad: VadSettings) -> Callable[[], VoiceActivityDetector]:
    if vad.engine == "silero":
        return partial(SileroVad, files.verified(files.SILERO_VAD), vad.silero_threshold)
    return partial(WebRtcVad, vad.webrtc_mode)


def build_llm(settings: Settings, agent: AgentConfig, pool: ModelPool, http: httpx.AsyncClient | None) -> LanguageModel:
    """The agent's LLM: embedded llama.cpp, or a hosted OpenAI-compatible API."""
    if agent.llm.provider == "openai":
        from voxline.llm.openai_compat import OpenAICompatibleChat

        if http is None:
            raise ValueError("a hosted LLM needs the process's HTTP client")
        log.info("LLM: OpenAI-compatible API at %s, model %s", settings.openai_base_url, agent.llm.model)
        return OpenAICompatibleChat(http, settings.openai_base_url, settings.openai_api_key.get_secret_value(),
                                    agent.llm.model, timeout_s=agent.llm.timeout_s)
    from voxline.llm.llama import LlamaChat

    gguf = files.llm_gguf(agent.llm.model, settings.cache_dir)
    llm = LlamaChat(agent.llm.model, gguf, pool, settings.model_threads, agent.llm.context_tokens)
    llm.warm_up(agent.system_prompt)
    log.info("LLM loaded: %s (%s)", llm.name, gguf.name)
    return llm


def load_embedded(settings: Settings, agent: AgentConfig, http: httpx.AsyncClient | None = None) -> VoiceStack:
    """Check every model file against its pin, load the models and warm them up (blocking)."""
    from voxline.stt.whisper import WhisperSTT

    started = time.perf_counter()
    threads = settings.model_threads
    stt_pool, llm_pool, tts_pool = ModelPool(1), ModelPool(1), ModelPool(1)

    stt = WhisperSTT(files.whisper_tiny_en_dir(), stt_pool, threads, settings.whisper_window)
    stt.warm_up()
    log.info("STT loaded: %s", stt.name)

    llm = build_llm(settings, agent, llm_pool, http)

    tts = load_tts(agent, tts_pool)
    tts.warm_up()
    log.info("TTS loaded: %s", tts.name)

    stack = VoiceStack(stt=stt, llm=llm, tts=tts, make_vad=vad_factory(agent.vad),
                       pools=[stt_pool, llm_pool, tts_pool], fixed_phrases={})
    for phrase in (agent.greeting, agent.goodbye, agent.reprompt, agent.apology, agent.still_there, agent.busy):
        stack.fixed_phrases[phrase] = tts.synthesize_blocking(phrase)
    stack.make_vad()  # fail at start-up, not on the first call, if the VAD cannot load
    log.info("models ready in %.1f s", time.perf_counter() - started)
    return stack


def load_tts(agent: AgentConfig, pool: ModelPool):
    if agent.voice.engine == "espeak":
        files.verified_all(files.ESPEAK_DATA)
        from voxline.tts.espeak_tts import EspeakTTS

        return EspeakTTS(pool, voice=agent.voice.voice, speed=agent.voice.speed)
    files.verified_all(files.HIBARI_HEART)
    from voxline.tts.hibari_tts import HibariTTS

    return HibariTTS(pool, speed=agent.voice.speed, voice=agent.voice.voice)
