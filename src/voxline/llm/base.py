"""The LLM interface every provider implements."""

from __future__ import annotations

from typing import AsyncIterator, Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class LanguageModel(Protocol):
    """Streams a chat reply. Closing the iterator early must stop generation promptly."""

    name: str

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float) -> AsyncIterator[str]: ...
