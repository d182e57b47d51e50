"""The LLM interface every provider implements."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from voxline.llm.events import LlmEvent, ToolCall

Tools = list[dict[str, Any]]  # OpenAI-style tool definitions: {"type": "function", "function": {…}}


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: NotRequired[list[dict[str, Any]]]  # an assistant's request for tools (OpenAI's shape)
    tool_call_id: NotRequired[str]  # a tool's answer: to which request


class LanguageModel(Protocol):
    """Streams a chat reply as typed events (text, tool calls). Closing the iterator early must stop
    generation promptly."""

    name: str
    prefills_locally: bool  # whether ``prefill`` saves time (worth transcribing partial speech for)
    invents_arguments: bool  # a small model: numbers in its tool calls are checked against the caller's words

    def stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools: Tools | None = None
    ) -> AsyncIterator[LlmEvent]: ...

    def with_tool_results(self, messages: list[ChatMessage], results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        """``messages`` followed by the tools it asked for and what they answered, in the form this
        model reads best (OpenAI's tool messages, or a note for a small local model)."""
        ...

    async def prefill(self, messages: list[ChatMessage]) -> None:
        """A hint that a prompt starting with ``messages`` is coming (the last one still growing).

        Local models evaluate it ahead of time; hosted APIs may do nothing.
        """
        ...


def openai_tool_messages(messages: list[ChatMessage], results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
    """OpenAI's function-calling turn: the assistant's ``tool_calls``, then one ``tool`` message each."""
    request: ChatMessage = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call, _ in results
        ],
    }
    answers: list[ChatMessage] = [
        {"role": "tool", "tool_call_id": call.id, "content": answer} for call, answer in results
    ]
    return [*messages, request, *answers]
