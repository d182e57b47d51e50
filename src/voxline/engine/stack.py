"""The voice stack: the STT, LLM and TTS an agent uses (embedded or hosted), loaded once per process and shared.

Each model gets its own one-thread lane, so a long LLM generation never queues a
transcription behind it, and no model is ever run by two threads at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import aiohttp

from voxline.config import (
    DEFAULT_EMBEDDED_LLM,
    DEFAULT_STT_MODELS,
    DEFAULT_TTS_MODELS,
    DEFAULT_VOICES,
    EMBEDDED_VOICE,
    AgentConfig,
    Settings,
    VadSettings,
)
from voxline.engine import files
from voxline.llm.base import LanguageModel
from voxline.providers.pool import ModelPool
from voxline.stt.base import SpeechToText, StreamingSpeechToText
from voxline.stt.parking import StreamParking
from voxline.tts.base import TextToSpeech
from voxline.tts.cache import AudioCache, CachedTTS
from voxline.turns.vad import SileroVad, VoiceActivityDetector, WebRtcVad

log = logging.getLogger(__name__)


@dataclass
class VoiceStack:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    make_vad: Callable[[], VoiceActivityDetector]
    pools: list[ModelPool]
    fixed_phrases: dict[tuple[str, str], bytes]
    stt_by_language: dict[str, SpeechToText] = field(default_factory=dict)
    tts_by_language: dict[str, TextToSpeech] = field(default_factory=dict)
    chooser_stt: SpeechToText | None = None  # multilingual, for a caller who has not picked a language
    streams: StreamParking | None = None  # set when the STT is a live (streaming) provider
    stt_fallback: SpeechToText | None = None  # transcribes a turn the STT provider failed
    tts_cache: AudioCache | None = None

    def stt_for(self, language: str | None) -> SpeechToText:
        return self.stt_by_language.get(language or "", self.stt)

    def tts_for(self, language: str | None) -> TextToSpeech:
        return self.tts_by_language.get(language or "", self.tts)

    async def speak(self, text: str, language: str | None = None) -> bytes:
        """Synthesize, reusing the pre-rendered audio of fixed phrases (greeting, re-prompt, apology)."""
        # A language without a voice of its own speaks with the default one, and shares its phrases.
        key = (language if language in self.tts_by_language else "", text)
        if key in self.fixed_phrases:
            return self.fixed_phrases[key]
        return await self.tts_for(language).synthesize(text)

    async def prerender(self, agent: AgentConfig) -> None:
        """Synthesize the agent's fixed phrases once, so they play with no synthesis (and even while a
        hosted TTS is failing)."""
        for phrase in (agent.greeting, agent.goodbye, agent.reprompt, agent.apology, agent.still_there, agent.busy):
            if ("", phrase) not in self.fixed_phrases:
                self.fixed_phrases[("", phrase)] = await self.tts.synthesize(phrase)
        for code, language in agent.languages.items():
            for phrase in (language.prompt, language.confirmation):
                if phrase and (code, phrase) not in self.fixed_phrases:
                    self.fixed_phrases[(code, phrase)] = await self.tts_for(code).synthesize(phrase)

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown()


def vad_factory(vad: VadSettings) -> Callable[[], VoiceActivityDetector]:
    if vad.engine == "silero":
        return partial(SileroVad, files.verified(files.SILERO_VAD), vad.silero_threshold)
    return partial(WebRtcVad, vad.webrtc_mode)


def build_llm(
    settings: Settings, agent: AgentConfig, pool: ModelPool, http: aiohttp.ClientSession | None
) -> LanguageModel:
    """The agent's LLM (embedded llama.cpp, or a hosted OpenAI-compatible API), with its fallback if any."""
    llm = _build_llm(settings, agent, pool, http)
    if agent.llm.fallback:
        from voxline.engine.fallback import FallbackChat

        model = agent.llm.fallback_model or (DEFAULT_EMBEDDED_LLM if agent.llm.fallback == "embedded" else "")
        if not model:
            raise ValueError("[llm] fallback_model must name the hosted fallback's model")
        fallback_agent = agent.model_copy(
            update={
                "llm": agent.llm.model_copy(update={"provider": agent.llm.fallback, "model": model, "fallback": ""})
            }
        )
        fallback = _build_llm(settings, fallback_agent, pool, http)  # a hosted primary leaves the lane free
        log.info("LLM fallback: %s", fallback.name)
        return FallbackChat(llm, fallback)
    return llm


def _build_llm(
    settings: Settings, agent: AgentConfig, pool: ModelPool, http: aiohttp.ClientSession | None
) -> LanguageModel:
    if agent.llm.provider == "openai":
        from voxline.llm.openai_compat import OpenAICompatibleChat

        log.info("LLM: OpenAI-compatible API at %s, model %s", settings.openai_base_url, agent.llm.model)
        return OpenAICompatibleChat(
            _need(http),
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            agent.llm.model,
            timeout_s=agent.llm.timeout_s,
        )
    from voxline.llm.llama import LlamaChat
    from voxline.tools.definitions import tool_definitions

    gguf = files.llm_gguf(agent.llm.model, settings.cache_dir)
    llm = LlamaChat(agent.llm.model, gguf, pool, settings.model_threads, agent.llm.context_tokens)
    llm.warm_up(agent.system_prompt, tool_definitions(agent))
    log.info("LLM loaded: %s (%s)", llm.name, gguf.name)
    return llm


def load_stack(settings: Settings, agent: AgentConfig, http: aiohttp.ClientSession | None = None) -> VoiceStack:
    """The agent's STT, LLM and TTS: embedded models are checked against their pins, loaded and
    warmed up (blocking); hosted providers get the process's pooled HTTP client."""
    started = time.perf_counter()
    stt_pool, llm_pool, tts_pool = ModelPool(1), ModelPool(1), ModelPool(1)
    stt = build_stt(settings, agent, stt_pool, http)
    llm = build_llm(settings, agent, llm_pool, http)
    cache = tts_cache(settings)
    tts = _cached(build_tts(settings, agent, tts_pool, http), settings, agent, tts_pool, http, cache)
    stack = VoiceStack(
        stt=stt,
        llm=llm,
        tts=tts,
        make_vad=vad_factory(agent.vad),
        pools=[stt_pool, llm_pool, tts_pool],
        fixed_phrases={},
        tts_cache=cache,
    )
    if isinstance(stt, StreamingSpeechToText):
        stack.streams = StreamParking(stt)
    if agent.stt.fallback:
        fallback_agent = agent.model_copy(
            update={
                "stt": agent.stt.model_copy(
                    update={"provider": agent.stt.fallback, "model": agent.stt.fallback_model, "fallback": ""}
                )
            }
        )
        fallback_pool = ModelPool(1)
        stack.pools.append(fallback_pool)
        stack.stt_fallback = build_stt(settings, fallback_agent, fallback_pool, http)
        log.info("STT fallback: %s", stack.stt_fallback.name)
    if agent.languages:
        _load_languages(stack, settings, agent, http)
    stack.make_vad()  # fail at start-up, not on the first call, if the VAD cannot load
    log.info("models ready in %.1f s", time.perf_counter() - started)
    return stack


def build_stt(
    settings: Settings, agent: AgentConfig, pool: ModelPool, http: aiohttp.ClientSession | None
) -> SpeechToText:
    stt_settings = agent.stt
    if stt_settings.provider == "deepgram":
        from voxline.stt.deepgram import DeepgramSTT

        log.info(
            "STT: Deepgram live API at %s, model %s",
            settings.deepgram_base_url,
            stt_settings.model or DEFAULT_STT_MODELS["deepgram"],
        )
        return DeepgramSTT(
            settings.deepgram_base_url,
            settings.deepgram_api_key.get_secret_value(),
            stt_settings.model or DEFAULT_STT_MODELS["deepgram"],
            endpointing_ms=stt_settings.endpointing_ms,
            utterance_end_ms=stt_settings.utterance_end_ms,
            connect_timeout_s=min(stt_settings.timeout_s, 5.0),
        )
    if stt_settings.provider == "sarvam":
        from voxline.stt.sarvam_stt import SarvamSTT

        log.info(
            "STT: Sarvam at %s, model %s", settings.sarvam_base_url, stt_settings.model or DEFAULT_STT_MODELS["sarvam"]
        )
        return SarvamSTT(
            _need(http),
            settings.sarvam_base_url,
            settings.sarvam_api_key.get_secret_value(),
            stt_settings.model or DEFAULT_STT_MODELS["sarvam"],
            timeout_s=stt_settings.timeout_s,
        )
    if agent.stt.provider == "openai":
        from voxline.stt.openai_stt import OpenAICompatibleSTT

        log.info("STT: OpenAI-compatible API at %s, model %s", settings.openai_base_url, agent.stt.model)
        return OpenAICompatibleSTT(
            _need(http),
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            agent.stt.model,
            timeout_s=agent.stt.timeout_s,
        )
    from voxline.stt.whisper import WhisperSTT

    if agent.language not in ("en", "") and not agent.languages:
        model_dir = files.whisper_base_dir(settings.cache_dir)  # tiny.en hears English only
    else:
        model_dir = files.whisper_tiny_en_dir()
    stt = WhisperSTT(model_dir, pool, settings.model_threads, settings.whisper_window)
    stt.warm_up()
    log.info("STT loaded: %s", stt.name)
    return stt


def tts_cache(settings: Settings) -> AudioCache | None:
    if settings.tts_cache_mb <= 0:
        return None
    return AudioCache(settings.tts_cache_mb * 1024 * 1024, settings.data_dir / "tts-cache")


def _cached(
    tts: TextToSpeech,
    settings: Settings,
    agent: AgentConfig,
    pool: ModelPool,
    http: aiohttp.ClientSession | None,
    cache: AudioCache | None,
) -> TextToSpeech:
    """The engine behind the audio cache, then its fallback (cached under its own name) if any."""
    voice = agent.voice
    language = voice.language or agent.language
    variant = f"speed={voice.speed}" if voice.speed != 1.0 else ""
    if cache is not None:
        tts = CachedTTS(tts, cache, language, variant)
    if voice.fallback:
        from voxline.engine.fallback import FallbackTTS

        fallback_voice = voice.fallback_voice or {"hibari": EMBEDDED_VOICE, "espeak": agent.language or "en"}.get(
            voice.fallback, ""
        )
        fallback_agent = agent.model_copy(
            update={
                "voice": voice.model_copy(
                    update={
                        "engine": voice.fallback,
                        "voice": fallback_voice or voice.voice,
                        "model": voice.fallback_model,
                        "fallback": "",
                    }
                )
            }
        )
        fallback = build_tts(settings, fallback_agent, pool, http)
        if cache is not None:
            fallback = CachedTTS(fallback, cache, language, variant)
        log.info("TTS fallback: %s", fallback.name)
        tts = FallbackTTS(tts, fallback)
    return tts


def build_tts(
    settings: Settings, agent: AgentConfig, pool: ModelPool, http: aiohttp.ClientSession | None
) -> TextToSpeech:
    voice = agent.voice
    if voice.engine == "sarvam":
        from voxline.tts.sarvam_tts import SarvamTTS

        speaker = DEFAULT_VOICES["sarvam"] if voice.voice == EMBEDDED_VOICE else voice.voice
        model = voice.model or DEFAULT_TTS_MODELS["sarvam"]
        language = voice.language or agent.language
        log.info(
            "TTS: Sarvam at %s, model %s, speaker %s, language %s", settings.sarvam_base_url, model, speaker, language
        )
        return SarvamTTS(
            _need(http),
            settings.sarvam_base_url,
            settings.sarvam_api_key.get_secret_value(),
            model,
            speaker,
            language,
            pace=voice.speed,
            timeout_s=voice.timeout_s,
        )
    if voice.engine == "elevenlabs":
        from voxline.tts.hosted_tts import ElevenLabsTTS

        log.info("TTS: ElevenLabs at %s, voice %s, model %s", settings.elevenlabs_base_url, voice.voice, voice.model)
        return ElevenLabsTTS(
            _need(http),
            settings.elevenlabs_base_url,
            settings.elevenlabs_api_key.get_secret_value(),
            voice.voice,
            voice.model,
            timeout_s=voice.timeout_s,
        )
    if voice.engine == "openai":
        from voxline.tts.hosted_tts import OpenAICompatibleTTS

        log.info(
            "TTS: OpenAI-compatible API at %s, model %s, voice %s", settings.openai_base_url, voice.model, voice.voice
        )
        return OpenAICompatibleTTS(
            _need(http),
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            voice.model,
            voice.voice,
            timeout_s=voice.timeout_s,
        )
    tts = load_tts(agent, pool)
    tts.warm_up()
    log.info("TTS loaded: %s", tts.name)
    return tts


def _load_languages(
    stack: VoiceStack, settings: Settings, agent: AgentConfig, http: aiohttp.ClientSession | None
) -> None:
    """Per-language STT and TTS. Offline, English keeps Whisper tiny.en and every other language (and
    the caller who has not chosen yet) gets the multilingual Whisper base."""
    from voxline.stt.whisper import WhisperSTT

    multilingual: SpeechToText | None = None

    def whisper_base() -> SpeechToText:
        nonlocal multilingual
        if multilingual is None:
            pool = ModelPool(1)
            stack.pools.append(pool)
            multilingual = WhisperSTT(
                files.whisper_base_dir(settings.cache_dir), pool, settings.model_threads, settings.whisper_window
            )
            multilingual.warm_up()
            log.info("STT loaded: %s (multilingual)", multilingual.name)
        return multilingual

    tts_pool = stack.pools[2]
    for code, language in agent.languages.items():
        if agent.stt.provider == "embedded":
            fits = language.stt_language == "en" or getattr(stack.stt, "multilingual", False)
            stack.stt_by_language[code] = stack.stt if fits else whisper_base()
        voice_agent = agent.model_copy(update={"voice": language.voice, "language": language.stt_language})
        stack.tts_by_language[code] = _cached(
            build_tts(settings, voice_agent, tts_pool, http), settings, voice_agent, tts_pool, http, stack.tts_cache
        )
    if agent.choose_language:
        stack.chooser_stt = whisper_base() if agent.stt.provider == "embedded" else stack.stt


def _need(http: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
    if http is None:
        raise ValueError("a hosted provider needs the process's HTTP client")
    return http


def load_tts(agent: AgentConfig, pool: ModelPool):
    if agent.voice.engine == "espeak":
        files.verified_all(files.ESPEAK_DATA)
        from voxline.tts.espeak_tts import EspeakTTS

        return EspeakTTS(pool, voice=agent.voice.voice, speed=agent.voice.speed)
    files.verified_all(files.HIBARI_HEART)
    from voxline.tts.hibari_tts import HibariTTS

    return HibariTTS(pool, speed=agent.voice.speed, voice=agent.voice.voice)
