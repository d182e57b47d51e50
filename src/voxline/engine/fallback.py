"""A second provider for a stage, used for one turn when the first still fails after its retries.

``[llm] fallback = "embedded"`` (or ``[stt]``, ``[voice]``) in the agent file: when the primary
raises ``ProviderError`` (its own bounded retries spent), the same request goes to the fallback
and the call goes on. An LLM falls back only before its first token, so the caller never hears a
reply that changes voice or mind half-way.

Each use is logged and reported to the call it happened in: the call session registers a
listener in its context (``report_fallbacks_to``), and the asyncio tasks of that call inherit it,
so a provider shared by every call can still tell the right call's record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

from voxline.errors import ProviderError
from voxline.llm.base import ChatMessage, LanguageModel, Tools
from voxline.llm.events import LlmEvent, ToolCall
from voxline.tts.base import TextToSpeech

log = logging.getLogger(__name__)

FallbackListener = Callable[[str, ProviderError, str], None]  # stage, the primary's error, the fallback's name
_listener: ContextVar[FallbackListener | None] = ContextVar("voxline_fallback_listener", default=None)


def report_fallbacks_to(listener: FallbackListener | None) -> None:
    """Fallbacks used from this context on (this call's tasks) are reported to ``listener``."""
    _listener.set(listener)


def fallback_used(stage: str, error: ProviderError, fallback: str) -> None:
    log.warning("%s failed (%s); this turn uses the fallback %s", stage.upper(), error, fallback)
    listener = _listener.get()
    if listener is not None:
        listener(stage, error, fallback)


class FallbackTTS:
    def __init__(self, primary: TextToSpeech, fallback: TextToSpeech) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def synthesize(self, text: str) -> bytes:
        try:
            return await self.primary.synthesize(text)
        except ProviderError as exc:
            fallback_used("tts", exc, self.fallback.name)
            return await self.fallback.synthesize(text)

    def __getattr__(self, name: str):
        return getattr(self.primary, name)


class FallbackChat:
    def __init__(self, primary: LanguageModel, fallback: LanguageModel) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.prefills_locally = primary.prefills_locally
        self.invents_arguments = primary.invents_arguments or fallback.invents_arguments

    async def prefill(self, messages: list[ChatMessage]) -> None:
        await self.primary.prefill(messages)

    def with_tool_results(self, messages: list[ChatMessage], results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        return self.primary.with_tool_results(messages, results)

    async def stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools: Tools | None = None
    ) -> AsyncIterator[LlmEvent]:
        started = False
        try:
            async for event in self.primary.stream(messages, max_tokens, temperature, tools):
                started = True
                yield event
            return
        except ProviderError as exc:
            if started:
                raise
            fallback_used("llm", exc, self.fallback.name)
        async for event in self.fallback.stream(messages, max_tokens, temperature, tools):
            yield event

    def __getattr__(self, name: str):
        return getattr(self.primary, name)
