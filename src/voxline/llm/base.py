"""The LLM interface every provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol, TypedDict

from voxline.llm.events import LlmEvent


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class LanguageModel(Protocol):
    """Streams a chat reply as typed events (text, tool calls). Closing the iterator early must stop
    generation promptly."""

    name: str
    prefills_locally: bool  # whether ``prefill`` saves time (worth transcribing partial speech for)

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float) -> AsyncIterator[LlmEvent]: ...

    async def prefill(self, messages: list[ChatMessage]) -> None:
        """A hint that a prompt starting with ``messages`` is coming (the last one still growing).

        Local models evaluate it ahead of time; hosted APIs may do nothing.
        """
        ...
