"""Configuration: server settings from the environment / ``.env``, and the agent file.

Settings are process-wide (where to listen, credentials, model pool size). The agent file says
who answers the phone: its prompt, greeting, language, voice and turn-detection thresholds. A
ready "front desk" agent ships with the package so the server starts with no files at all.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxline.knowledge.schedule import DAYS, Schedule, parse_day, schedule_of


class Settings(BaseSettings):
    """Server settings. Twilio's variables keep their usual names; the rest start ``VOXLINE_``."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_", env_file=".env", extra="ignore")

    twilio_account_sid: str = Field(default="", validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr = Field(default=SecretStr(""), validation_alias="TWILIO_AUTH_TOKEN")
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        validation_alias="TWILIO_API_BASE_URL",
        description="Twilio's REST API (a local stand-in for tests).",
    )
    api_token: SecretStr = Field(default=SecretStr(""), description="Bearer token for /api; the API is off when empty.")
    metrics_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token Prometheus must send for /metrics; open when empty."
    )
    whisper_window: Literal["fit", "full"] = Field(
        default="fit", description="Whisper encoder window: the utterance plus 1 s ('fit', fast) or 30 s ('full')."
    )
    public_url: str = Field(
        default="",
        description="Public base URL Twilio uses to reach this server, e.g. https://voice.example.com. "
        "When empty, it is rebuilt from the Host header (or, from a trusted proxy, X-Forwarded-Proto/-Host).",
    )
    stream_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Keys the per-call stream credentials; every instance behind one number needs the same. "
        "Empty: derived from TWILIO_AUTH_TOKEN.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-Proto and "
        "X-Forwarded-Host are believed (e.g. 127.0.0.1,10.0.0.0/8); anyone else's are ignored.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError names the bad entry
        return value

    agent_file: Path | None = Field(default=None, description="TOML agent file; the packaged front desk if unset.")
    model_threads: int = Field(default=2, ge=1, description="Threads each embedded model may use.")
    model_workers: int = Field(default=2, ge=1, description="Size of the pool that runs blocking model calls.")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "voxline",
        description="Where model files assembled from several package parts are kept.",
    )
    data_dir: Path = Field(
        default=Path.home() / ".local" / "share" / "voxline", description="Call store and served audio files."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the call store; a SQLite file in data_dir if "
        "empty. PostgreSQL: postgresql+asyncpg://user:password@host/db.",
    )
    retention_days: float = Field(default=90, ge=0, description="Calls older than this are deleted (0: kept forever).")
    store_memory_writes: int = Field(
        default=10_000,
        ge=1,
        description="Call-store writes kept in memory while the "
        "database is unavailable; more go to a journal file in data_dir.",
    )
    record_timeout_s: int = Field(
        default=1, ge=1, description="<Record timeout>: seconds of silence that end a recorded turn."
    )
    record_max_length_s: int = Field(default=30, ge=1, description="<Record maxLength> in seconds.")
    recording_fetch_window_s: float = Field(
        default=8.0, gt=0, description="How long to retry fetching a recording that is not ready."
    )
    recording_url_prefixes: str = Field(
        default="https://api.twilio.com/",
        description="Comma-separated URL prefixes a RecordingUrl must start with to be fetched (with the "
        "account's credentials).",
    )
    recording_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, description="A recording larger than this is not read."
    )
    audio_ttl_s: int = Field(default=600, ge=60, description="How long a served reply audio URL stays valid.")
    max_calls: int = Field(
        default=10, ge=1, description="Concurrent streaming calls; more get 'busy' (or the recording path)."
    )
    stream_admission_s: float = Field(
        default=10.0,
        gt=0,
        description="A streaming call's place is held this long after its webhook for its stream to start.",
    )
    webhook_max_bytes: int = Field(
        default=16384, ge=1024, description="Largest webhook body read (Twilio's are about 1 kB); larger: 413."
    )
    send_timeout_s: float = Field(
        default=10.0, gt=0, description="A stream whose peer has read nothing for this long is dropped."
    )
    stream_start_timeout_s: float = Field(
        default=5.0, gt=0, description="A stream socket that has not sent a valid 'start' by then is closed."
    )
    unstarted_streams_per_client: int = Field(
        default=20, ge=1, description="Stream sockets one client address may hold open before their 'start'."
    )
    overflow_to_recording: bool = Field(
        default=False, description="Over max_calls, answer with the recording path instead of busy."
    )
    max_call_duration_s: float = Field(default=1800, gt=0, description="A call longer than this is ended politely.")
    caller_silence_timeout_s: float = Field(
        default=20,
        gt=0,
        description="Caller silent this long: 'are you still there?', then goodbye after as long again.",
    )
    shutdown_grace_s: float = Field(
        default=30, ge=0, description="On SIGTERM, how long calls may take to finish their turn."
    )
    max_message_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest WebSocket message accepted.")
    log_level: str = "INFO"
    log_personal_data: bool = Field(
        default=False, description="Write callers' numbers and transcripts into the log (off: their length only)."
    )
    dev_mode: bool = Field(
        default=False,
        description="Set by `voxline serve --dev`: unauthenticated local use; "
        "the softphone (/phone) then works without VOXLINE_API_TOKEN.",
    )
    otel_endpoint: str = Field(
        default="",
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP endpoint for OpenTelemetry traces (one span per turn and stage); off if empty.",
    )
    # Provider selection by environment, overriding the agent file.
    llm: str = Field(default="", description="VOXLINE_LLM: 'embedded' or 'openai'.")
    llm_model: str = Field(default="", description="VOXLINE_LLM_MODEL: the model name for the chosen LLM provider.")
    openai_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    stt: str = Field(default="", description="VOXLINE_STT: 'embedded', 'openai', 'deepgram' or 'sarvam'.")
    stt_model: str = Field(default="", description="VOXLINE_STT_MODEL.")
    tts: str = Field(default="", description="VOXLINE_TTS: 'embedded', 'openai', 'elevenlabs' or 'sarvam'.")
    tts_model: str = Field(default="", description="VOXLINE_TTS_MODEL.")
    tts_voice: str = Field(default="", description="VOXLINE_TTS_VOICE (ElevenLabs: the voice ID).")
    elevenlabs_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(default="https://api.elevenlabs.io", validation_alias="ELEVENLABS_BASE_URL")
    deepgram_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="DEEPGRAM_API_KEY")
    deepgram_base_url: str = Field(default="wss://api.deepgram.com", validation_alias="DEEPGRAM_BASE_URL")
    sarvam_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="SARVAM_API_KEY")
    sarvam_base_url: str = Field(default="https://api.sarvam.ai", validation_alias="SARVAM_BASE_URL")
    tts_cache_mb: int = Field(default=64, ge=0, description="In-memory TTS cache bound (MB); 0 turns the cache off.")
    tts_cache_disk_mb: int = Field(default=512, ge=1, description="The TTS cache's folder on disk is kept under this.")
    tts_cache_days: float = Field(default=30, gt=0, description="Cached audio unused this long is removed from disk.")
    outbound_from: str = Field(
        default="",
        description="The number outbound calls come from (a Twilio number, E.164) when a request names none.",
    )
    outbound_per_minute: int = Field(
        default=10, ge=1, le=10000, description="Most outbound calls placed in any 60 seconds (more get 429)."
    )


class VadSettings(BaseModel):
    """Turn detection thresholds (20 ms frames)."""

    engine: Literal["webrtc", "silero"] = "webrtc"
    webrtc_mode: int = Field(default=3, ge=0, le=3, description="WebRTC VAD aggressiveness.")
    silero_threshold: float = Field(default=0.5, gt=0, lt=1)
    ring_ms: int = Field(default=600, description="Smoothing window for deciding that speech started.")
    start_ratio: float = Field(default=0.5, gt=0, le=1, description="Voiced fraction of the window that starts speech.")
    barge_in_ratio: float = Field(
        default=0.15,
        gt=0,
        le=1,
        description="Voiced fraction that starts speech while the agent is talking (interrupts it sooner).",
    )
    end_silence_frames: int = Field(default=15, ge=1, description="Unvoiced frames in a row that end the turn.")
    early_stt_frames: int = Field(
        default=5,
        ge=0,
        description="Unvoiced frames after which transcription starts speculatively (0 turns it off).",
    )
    min_speech_ms: int = Field(default=200, ge=0, description="Shorter utterances are ignored as noise.")
    max_utterance_s: float = Field(default=30.0, gt=0, description="A turn longer than this is cut and answered.")


class EchoSettings(BaseModel):
    """The agent's own voice returning from the caller's phone (``[turns.echo]``)."""

    enabled: bool = Field(default=True, description="Do not take the agent's own echo for the caller's speech.")
    max_delay_ms: int = Field(default=500, ge=20, le=2000, description="Longest echo delay looked for.")
    margin_db: float = Field(default=6.0, ge=0, description="How far above the echo estimate speech must be.")
    warmup_loss_db: float = Field(
        default=-10.0, le=0, description="Echo loss assumed until the call's own has been learned (the worst case)."
    )
    warmup_s: float = Field(default=1.0, ge=0, description="Seconds of agent audio before the learned loss is used.")
    caller_ratio_db: float = Field(
        default=-6.0, le=0, description="Inbound audio this close to the agent's level is never learned as echo."
    )


BACKCHANNELS = (
    "mm-hmm mhm mm mmm hmm hm uh-huh uh huh oh ah aha okay ok yeah yes yep yup right sure alright all right i see "
    "got it great "
    "cool fine good haan ha han haa achha acha accha theek thik hai ji हाँ हां हा अच्छा ठीक है जी"
)


class TurnSettings(BaseModel):
    """When the caller's turn ends and what counts as an interruption (``[turns]`` in the agent file).

    ``adaptive`` (the default) chooses the silence that ends a turn from the early transcript: short
    after a question, longer after a statement, longest after a trailing "and" or half a phone
    number; it starts the reply at the pause and holds its audio until the turn is confirmed.
    ``silence`` ends every turn after ``[vad] end_silence_frames``.
    """

    end_of_turn: Literal["adaptive", "silence"] = "adaptive"
    question_silence_ms: int = Field(default=400, ge=60, description="Silence that ends a turn after a question.")
    complete_silence_ms: int = Field(default=700, ge=60, description="… after a sentence that ends with a full stop.")
    unsure_silence_ms: int = Field(default=800, ge=60, description="… after words with no punctuation to go by.")
    incomplete_silence_ms: int = Field(
        default=1400, ge=60, description="… after a trailing 'and', 'um', a comma or part of a number."
    )
    empty_silence_ms: int = Field(default=300, ge=60, description="… when no words were recognised.")
    wait_for_text_ms: int = Field(
        default=1000, ge=60, description="Longest silence waited while the transcript is not back yet."
    )
    speculate: bool = Field(
        default=True, description="Start the reply at the pause, holding its audio until the turn is confirmed."
    )
    interrupt_confirm_ms: int = Field(
        default=1200,
        ge=0,
        description="Speech over the agent this long (voiced) is an interruption whatever its words; shorter "
        "speech pauses the agent, which resumes if it was a backchannel or no words.",
    )
    overlap_end_silence_ms: int = Field(
        default=240, ge=60, description="Silence that ends a short utterance spoken over the agent."
    )
    backchannels: list[str] = Field(
        default_factory=lambda: BACKCHANNELS.split(),
        description="Words that, alone, acknowledge the agent without taking the turn.",
    )
    echo: EchoSettings = EchoSettings()


# Provider defaults, in one place: what a stage uses when the agent file and the environment do
# not say (``effective_agent`` fills them in; the stack reads them for fallbacks).
EMBEDDED_LLMS = ("qwen2.5-0.5b", "smollm2-135m")
DEFAULT_EMBEDDED_LLM = EMBEDDED_LLMS[0]
DEFAULT_STT_MODELS = {"deepgram": "nova-3", "sarvam": "saarika:v2.5"}
DEFAULT_TTS_MODELS = {"sarvam": "bulbul:v2"}
DEFAULT_VOICES = {"sarvam": "anushka", "openai": "alloy"}  # hosted engines' voices when the agent names none
EMBEDDED_VOICE = "heart"  # hibari's bundled voice (espeak: the agent's language)


class LlmSettings(BaseModel):
    provider: Literal["embedded", "openai"] = Field(
        default="embedded", description="'embedded' (llama.cpp, offline) or 'openai' (any OpenAI-compatible API)."
    )
    fallback: Literal["", "embedded", "openai"] = Field(
        default="", description="Used for a turn when the provider still fails after its retries ('' : none)."
    )
    fallback_model: str = Field(default="", description="The fallback's model (embedded: qwen2.5-0.5b by default).")
    model: str = Field(
        default=DEFAULT_EMBEDDED_LLM,
        description="Embedded: qwen2.5-0.5b or smollm2-135m; openai: the API's model name.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Hosted provider: time allowed per request.")
    max_tokens: int = Field(default=80, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    context_tokens: int = Field(default=2048, ge=256)
    history_turns: int = Field(default=8, ge=0, description="Caller/agent exchanges kept in the prompt.")
    prefill_every_ms: int = Field(
        default=1000,
        ge=0,
        description="While the caller talks, transcribe what they said so far this often and let the LLM "
        "evaluate it ahead of time (0 turns it off).",
    )
    first_piece_max_words: int = Field(
        default=6,
        ge=0,
        description="Speak the reply's first words once this many are written, without waiting for "
        "punctuation (0: wait for a clause or sentence end).",
    )
    first_clause_min_words: int = Field(
        default=1,
        ge=1,
        description="The reply's first piece may end at a comma this many words in ('Sure,' is spoken "
        "while the rest is still being written).",
    )


STT_PROVIDERS = Literal["embedded", "openai", "deepgram", "sarvam"]


class SttSettings(BaseModel):
    provider: STT_PROVIDERS = "embedded"
    model: str = Field(default="", description="Hosted model name, e.g. whisper-1, nova-3, saarika:v2.5.")
    timeout_s: float = Field(default=10.0, gt=0)
    fallback: Literal["", "embedded", "openai", "deepgram", "sarvam"] = Field(
        default="", description="Transcribes a turn the provider failed (after its retries); '' : none."
    )
    fallback_model: str = Field(default="", description="The fallback's model, for a hosted fallback.")
    endpointing_ms: int = Field(default=200, ge=10, description="Deepgram: silence that ends a segment (speech_final).")
    utterance_end_ms: int = Field(
        default=1000, ge=1000, description="Deepgram: the gap after the last word that sends UtteranceEnd."
    )


TTS_ENGINES = Literal["hibari", "espeak", "openai", "elevenlabs", "sarvam"]


class VoiceSettings(BaseModel):
    engine: TTS_ENGINES = "hibari"
    voice: str = Field(
        default="heart",
        description="hibari: 'heart'; espeak: e.g. 'hi' or 'en-us'; openai: e.g. "
        "'alloy'; elevenlabs: the voice ID; sarvam: the speaker, e.g. 'anushka'.",
    )
    language: str = Field(
        default="", description="Sarvam: target_language_code, e.g. 'hi-IN' (default: from the agent's language)."
    )
    fallback: Literal["", "hibari", "espeak", "openai", "elevenlabs", "sarvam"] = Field(
        default="", description="Speaks a clause the engine failed (after its retries); '' : none."
    )
    fallback_voice: str = Field(default="", description="The fallback's voice (default: the engine's default).")
    fallback_model: str = Field(default="", description="The fallback's model, for a hosted fallback.")
    model: str = Field(default="", description="Hosted model, e.g. tts-1 or eleven_flash_v2_5.")
    timeout_s: float = Field(default=10.0, gt=0)
    speed: float = Field(default=1.0, gt=0.3, lt=3.0)


class LanguageSettings(BaseModel):
    """One language the caller can choose (``[languages.CODE]`` in the agent file)."""

    name: str
    stt_language: str = Field(description="Whisper language code, e.g. 'hi'.")
    dtmf: str = Field(default="", description="The key that picks this language.")
    keywords: list[str] = Field(default_factory=list, description="Words that pick it when the caller says them.")
    instruction: str = Field(default="", description="Added to the system prompt, e.g. 'Answer in Hindi.'")
    prompt: str = Field(default="", description="Said after the greeting, in this language, e.g. 'For Hindi, press 2.'")
    confirmation: str = Field(description="Said, in this language, when the caller picks it.")
    voice: VoiceSettings = VoiceSettings()


class TransferSettings(BaseModel):
    """``[transfer]``: handing the caller to a person (needs Twilio's REST API on the call)."""

    @model_validator(mode="after")
    def _whisper(self) -> TransferSettings:
        _placeholders(self.whisper, "transfer.whisper", said="")
        return self

    number: str = Field(default="", description="Who takes the call, E.164 (or a SIP address); '' : no transfers.")
    phrase: str = Field(default="Let me put you through to a colleague. One moment, please.")
    caller_id: str = Field(default="", description="The number the person sees; '' : the number the caller dialled.")
    timeout_s: int = Field(default=20, ge=5, le=600, description="How long the person's phone rings.")
    no_answer: str = Field(
        default="Sorry, nobody can take your call right now. Please leave a message after the tone.",
        description="Said when nobody answers (busy, no answer, failed); then the caller's message is recorded.",
    )
    whisper: str = Field(
        default="",
        description="A warm hand-off: said to the person who answers before the caller is put through, "
        "e.g. 'A caller from the front desk. They said: {said}' ({said}: the caller's last words); '' : none.",
    )
    message_max_s: int = Field(default=60, ge=5, le=600, description="Longest message recorded.")
    thanks: str = Field(default="Thank you, we will call you back. Goodbye.", description="Said after the message.")
    unavailable: str = Field(
        default="Sorry, I can't put you through right now. Is there anything else I can help you with?",
        description="Said when the call cannot be handed over (no REST API, or it failed); the call goes on.",
    )


KEYS = "0123456789*#ABCD"  # the keys a phone sends (Twilio's DTMF digits)


def _placeholders(text: str, key: str, **allowed: str) -> None:
    """A phrase with ``{…}`` fields may use only the ones it is given."""
    try:
        text.format(**allowed)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{key}: only {', '.join('{' + a + '}' for a in allowed)} may appear in braces") from exc


class KeypadCollection(BaseModel):
    """``[[keypad.collect]]``: a number the agent asks the caller to type, e.g. an order number."""

    name: str = Field(min_length=1, max_length=60, description="What it is, e.g. 'order number'.")
    ask: list[str] = Field(
        min_length=1,
        description="Words that, in what the agent says, ask for it (e.g. 'order number'): the next keys "
        "the caller types are taken as this number.",
    )
    min_digits: int = Field(default=1, ge=1, le=64)
    max_digits: int = Field(default=20, ge=1, le=64, description="Typing stops here, without the end key.")
    said: str = Field(
        default="My {name} is {digits}.",
        description="How a valid entry reaches the agent ({name}, {digits}).",
    )
    invalid: str = Field(
        default="Sorry, that {name} doesn't look right. Please type it again, then press the hash key.",
        description="Said when the entry is too short or too long; the agent waits for it again.",
    )

    @model_validator(mode="after")
    def _lengths(self) -> KeypadCollection:
        if self.min_digits > self.max_digits:
            raise ValueError(f"keypad.collect {self.name!r}: min_digits is more than max_digits")
        _placeholders(self.said, "keypad.collect.said", name="", digits="")
        _placeholders(self.invalid, "keypad.collect.invalid", name="")
        return self


class KeypadSettings(BaseModel):
    """``[keypad]``: what keys pressed on the caller's phone mean."""

    timeout_s: float = Field(default=3.0, ge=0.5, le=30, description="An entry ends this long after its last key.")
    terminator: str = Field(default="#", description="The key that ends an entry ('' : none).")
    max_digits: int = Field(default=20, ge=1, le=64, description="An entry ends at this many keys.")
    menu: dict[str, str] = Field(
        default_factory=dict,
        description="One key pressed on its own, and what the caller means by it, e.g. '1' = 'I want to book "
        "an appointment.' (at once, without waiting for the end key).",
    )
    said: str = Field(
        default="I typed {digits} on my keypad.",
        description="How other keys reach the agent ({digits}).",
    )
    collect: list[KeypadCollection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keys(self) -> KeypadSettings:
        _placeholders(self.said, "keypad.said", digits="")
        if self.terminator and (len(self.terminator) != 1 or self.terminator not in KEYS):
            raise ValueError(f"keypad.terminator must be one key of {KEYS} or ''")
        for key in self.menu:
            if len(key) != 1 or key not in KEYS:
                raise ValueError(f"keypad.menu key {key!r} is not one key of {KEYS}")
            if key == self.terminator:
                raise ValueError(f"keypad.menu key {key!r} is the terminator")
        return self


TOOL_NAME = r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _endpoint(url: str, key: str) -> None:
    """The business's endpoints are HTTPS; plain HTTP only on this machine."""
    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"{key} must be https:// (http:// only for this machine)")


BUILTIN_TOOLS = ("end_call", "transfer_to_person", "take_message")


class ToolSettings(BaseModel):
    """``[[tools]]``: something the agent can look up or do, at the business's HTTPS endpoint.

    The endpoint gets ``POST`` with the arguments as JSON and answers JSON; a ``say`` field in the
    answer is spoken as it is (the reliable way with the embedded LLM), else the tool's ``say``
    template is filled from the arguments and the answer, else the LLM phrases the answer."""

    name: str = Field(pattern=TOOL_NAME)
    description: str = Field(min_length=1, description="When to use it, for the LLM.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the arguments (an object).",
    )
    url: str = Field(description="HTTPS endpoint (http only on this machine: 127.0.0.1, localhost).")
    timeout_s: float = Field(default=5.0, gt=0, le=30)
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with each request; ${NAME} is replaced by the environment variable NAME "
        "(secrets stay out of the agent file), e.g. Authorization = 'Bearer ${ORDERS_TOKEN}'.",
    )
    say: str = Field(
        default="",
        description="What to say with the answer, e.g. 'Order {order_number} is {status}.' ({…}: arguments and "
        "answer fields); '' : the answer's own 'say', else the LLM.",
    )

    @model_validator(mode="after")
    def _checked(self) -> ToolSettings:
        if self.name in BUILTIN_TOOLS:
            raise ValueError(f"tools: {self.name!r} is a built-in tool's name")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tools.{self.name}.parameters must be a JSON schema of type 'object'")
        _endpoint(self.url, f"tools.{self.name}.url")
        for header, value in self.headers.items():
            for name in ENV_REFERENCE.findall(value):
                if name not in os.environ:
                    raise ValueError(f"tools.{self.name}.headers.{header}: environment variable {name} is not set")
        return self

    def resolved_headers(self) -> dict[str, str]:
        """The headers with ``${NAME}`` replaced from the environment (at call time, never logged)."""
        return {
            header: ENV_REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), value)
            for header, value in self.headers.items()
        }


class TaskSettings(BaseModel):
    """``[[tasks]]``: something the agent collects from the caller and hands to the business (a
    booking, a callback request): a built-in tool whose fields are all required, read back to the
    caller (``spell``: digit by digit), stored with the call and POSTed to ``webhook_url``."""

    name: str = Field(pattern=TOOL_NAME, description="The tool's name, e.g. book_appointment.")
    description: str = Field(min_length=1, description="When to use it, for the LLM.")
    fields: dict[str, str] = Field(description="What it must have, each with a description for the LLM.")
    spell: list[str] = Field(default_factory=list, description="Fields read back digit by digit (phone numbers).")
    saved: str = Field(
        default="Thank you, that's noted.",
        description="Said when it is complete: {field} placeholders read the values back.",
    )
    ask_missing: str = Field(default="Could you also tell me your {field}?", description="When a field is missing.")
    webhook_url: str = Field(default="", description="Each one is POSTed here as JSON ('' : only stored).")
    webhook_secret_env: str = Field(
        default="VOXLINE_WEBHOOK_SECRET",
        description="The environment variable whose value signs the webhook (X-Voxline-Signature: sha256=HMAC).",
    )

    @model_validator(mode="after")
    def _checked(self) -> TaskSettings:
        key = f"tasks.{self.name}"
        if self.webhook_url:
            _endpoint(self.webhook_url, f"{key}.webhook_url")
        if not self.fields:
            raise ValueError(f"{key}.fields must name at least one field")
        if unknown := set(self.spell) - set(self.fields):
            raise ValueError(f"{key}.spell names fields it does not have: {', '.join(sorted(unknown))}")
        _placeholders(self.ask_missing, f"{key}.ask_missing", field="")
        _placeholders(self.saved, f"{key}.saved", **dict.fromkeys(self.fields, ""))
        return self


class MessageSettings(TaskSettings):
    """``[messages]``: the built-in ``take_message`` task, and where taken messages go."""

    name: str = "take_message"
    description: str = "Take a message for the staff when the caller wants to be called back."
    fields: dict[str, str] = Field(
        default_factory=lambda: {
            "name": "The caller's name.",
            "phone": "The caller's phone number, digits only.",
            "message": "What the caller wants the staff to know.",
        },
        description="What a message must have, each with a description for the LLM.",
    )
    saved: str = Field(default="Thank you, I've passed your message on. Someone will call you back.")


class HoursSettings(BaseModel):
    """``[hours]``: opening hours as a schedule, so "are you open now / today / on Saturday?" is
    answered from it in the business's time zone, not guessed by the LLM."""

    timezone: str = Field(default="", description="IANA time zone, e.g. Asia/Kolkata ('' : no schedule).")
    monday: str = Field(default="closed", description="'09:00-18:00', '09:00-13:00, 14:00-18:00' or 'closed'.")
    tuesday: str = "closed"
    wednesday: str = "closed"
    thursday: str = "closed"
    friday: str = "closed"
    saturday: str = "closed"
    sunday: str = "closed"
    closed_dates: list[str] = Field(default_factory=list, description="Holidays, as YYYY-MM-DD.")

    def week(self) -> list[str]:
        return [getattr(self, day) for day in DAYS]

    @model_validator(mode="after")
    def _checked(self) -> HoursSettings:
        for day in DAYS:
            try:
                parse_day(getattr(self, day))
            except ValueError as exc:
                raise ValueError(f"hours.{day}: {exc}") from exc
        try:
            schedule_of(self.timezone, self.week(), self.closed_dates)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"hours: {exc}") from exc
        if not self.timezone and any(parse_day(text) for text in self.week()):
            raise ValueError("hours: a schedule needs its timezone, e.g. timezone = 'Asia/Kolkata'")
        return self

    def schedule(self) -> Schedule | None:
        return schedule_of(self.timezone, self.week(), self.closed_dates)


class OutboundSettings(BaseModel):
    """``[outbound]``: calls the agent places (``voxline dial``, ``POST /api/calls``)."""

    greeting: str = Field(default="", description="Said when a person answers; '' : the agent's greeting.")
    voicemail: str = Field(
        default="Hello, this is a message for you. Please call us back when you can. Thank you, goodbye.",
        description="Left after the beep when an answering machine picks up; then the call ends.",
    )
    detection_timeout_s: int = Field(
        default=8,
        ge=3,
        le=60,
        description="Twilio's answering-machine detection decides within this (MachineDetectionTimeout); "
        "until then the agent is silent.",
    )
    ring_timeout_s: int = Field(default=30, ge=5, le=600, description="How long the phone rings before no-answer.")


class AgentConfig(BaseModel):
    """Who answers the phone. Loaded from a TOML file."""

    name: str = "front-desk"
    language: str = Field(default="en", description="Speech-to-text language code.")
    greeting: str
    system_prompt: str
    goodbye: str = "Goodbye."
    reprompt: str = "Sorry, I didn't catch that. Could you say it again?"
    apology: str = "Sorry, I'm having trouble hearing you right now. Please try again."
    still_there: str = "Are you still there?"
    busy: str = "Sorry, all our lines are busy right now. Please call back in a few minutes."
    vad: VadSettings = VadSettings()
    turns: TurnSettings = TurnSettings()
    stt: SttSettings = SttSettings()
    llm: LlmSettings = LlmSettings()
    voice: VoiceSettings = VoiceSettings()
    languages: dict[str, LanguageSettings] = Field(
        default_factory=dict,
        description="Languages the caller may choose, by code; 'language' is the one the call starts in.",
    )
    choose_language: bool = Field(default=False, description="Let the caller pick a language by key or by saying it.")
    pace_ahead_ms: int = Field(
        default=200, ge=20, le=2000, description="How far outbound audio may run ahead of real time."
    )
    transfer: TransferSettings = TransferSettings()
    keypad: KeypadSettings = KeypadSettings()
    outbound: OutboundSettings = OutboundSettings()
    hours: HoursSettings = HoursSettings()
    tools: list[ToolSettings] = Field(default_factory=list)
    tasks: list[TaskSettings] = Field(default_factory=list)
    messages: MessageSettings = MessageSettings()
    builtin_tools: list[str] = Field(
        default_factory=list,
        description="Built-in tools the LLM may call: end_call, transfer_to_person (needs [transfer] number), "
        "take_message ([messages]).",
    )
    filler: str = Field(default="One moment, let me check.", description="Said when a tool takes a while.")
    filler_after_ms: int = Field(default=400, ge=0, le=5000, description="How long a tool may take before the filler.")
    tool_failed: str = Field(
        default="Sorry, I couldn't look that up just now. Is there anything else I can help you with?",
        description="Said when a tool fails or times out; the call goes on.",
    )

    @model_validator(mode="after")
    def _language_keys(self) -> AgentConfig:
        for code, language in self.languages.items():
            if language.dtmf and language.dtmf in self.keypad.menu:
                raise ValueError(f"key {language.dtmf!r} picks language {code!r} and is also in keypad.menu")
            if language.dtmf and language.dtmf == self.keypad.terminator:
                raise ValueError(f"key {language.dtmf!r} picks language {code!r} and is the keypad terminator")
        return self

    @model_validator(mode="after")
    def _hours_in_prompt(self) -> AgentConfig:
        """The LLM knows the week's hours too (for questions that are about more than them)."""
        schedule = self.hours.schedule()
        if schedule is not None:
            line = f"Opening hours ({self.hours.timezone} time): {schedule.summary()}."
            if line not in self.system_prompt:
                self.system_prompt = f"{self.system_prompt.rstrip()}\n{line}"
        return self

    @model_validator(mode="after")
    def _tool_names(self) -> AgentConfig:
        for name in self.builtin_tools:
            if name not in BUILTIN_TOOLS:
                raise ValueError(f"builtin_tools: {name!r} is not one of {', '.join(BUILTIN_TOOLS)}")
        if "transfer_to_person" in self.builtin_tools and not self.transfer.number:
            raise ValueError("builtin_tools: transfer_to_person needs [transfer] number")
        names = [*(tool.name for tool in self.tools), *(task.name for task in self.tasks)]
        if len(set(names)) != len(names):
            raise ValueError("tools and tasks: two have the same name")
        if clash := set(names) & set(BUILTIN_TOOLS):
            raise ValueError(f"tools and tasks: {', '.join(sorted(clash))} is a built-in tool's name")
        return self


def effective_agent(agent: AgentConfig, settings: Settings) -> AgentConfig:
    """The agent with the environment's provider choices (VOXLINE_LLM, VOXLINE_LLM_MODEL) applied."""
    llm = agent.llm.model_copy()
    if settings.llm:
        llm.provider = settings.llm  # type: ignore[assignment]
        if not settings.llm_model and settings.llm != "embedded":
            raise ValueError("VOXLINE_LLM_MODEL must name the model when VOXLINE_LLM is not 'embedded'")
    if settings.llm_model:
        llm.model = settings.llm_model
    checked = LlmSettings.model_validate(llm.model_dump())
    if checked.provider == "embedded" and checked.model not in EMBEDDED_LLMS:
        raise ValueError(f"embedded LLM {checked.model!r} is not one of {', '.join(EMBEDDED_LLMS)}")
    stt = agent.stt.model_copy()
    if settings.stt:
        stt.provider = settings.stt  # type: ignore[assignment]
    if settings.stt_model:
        stt.model = settings.stt_model
    voice = agent.voice.model_copy()
    if settings.tts:
        voice.engine = "hibari" if settings.tts == "embedded" else settings.tts  # type: ignore[assignment]
        if settings.tts == "embedded":
            voice.voice = EMBEDDED_VOICE
    if settings.tts_model:
        voice.model = settings.tts_model
    if settings.tts_voice:
        voice.voice = settings.tts_voice
    stt, voice = SttSettings.model_validate(stt.model_dump()), VoiceSettings.model_validate(voice.model_dump())
    if voice.engine in DEFAULT_VOICES and voice.voice == EMBEDDED_VOICE:  # hibari's voice: not one a hosted engine has
        voice.voice = DEFAULT_VOICES[voice.engine]
    if not stt.model and stt.provider in DEFAULT_STT_MODELS:
        stt.model = DEFAULT_STT_MODELS[stt.provider]
    if not voice.model and voice.engine in DEFAULT_TTS_MODELS:
        voice.model = DEFAULT_TTS_MODELS[voice.engine]
    if stt.provider != "embedded" and not stt.model:
        raise ValueError("a hosted STT needs a model name (VOXLINE_STT_MODEL or [stt] model)")
    if voice.engine in ("openai", "elevenlabs") and not voice.model:
        raise ValueError("a hosted TTS needs a model name (VOXLINE_TTS_MODEL or [voice] model)")
    if (
        stt.fallback == stt.provider
        or voice.fallback == voice.engine
        or (llm.fallback and llm.fallback == llm.provider)
    ):
        raise ValueError("a fallback must be another provider than the one it stands in for")
    return agent.model_copy(update={"llm": checked, "stt": stt, "voice": voice})


def load_agent(path: Path | None) -> AgentConfig:
    """Read an agent file, or the packaged front desk agent when ``path`` is None."""
    if path is None:
        text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return AgentConfig.model_validate(tomllib.loads(text))
