"""What an LLM streams: text to speak, or a tool the agent wants called.

Typed events rather than bare strings, so a reply that asks for a tool (a lookup, a transfer)
travels through the same stream as one that only talks, and the session decides what to do with
each kind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the reply's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool: its name and JSON arguments (already parsed)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


LlmEvent = TextDelta | ToolCall


async def texts(events: AsyncIterator[LlmEvent]) -> AsyncIterator[str]:
    """Only the text of a stream of events (tool calls skipped)."""
    async for event in events:
        if isinstance(event, TextDelta):
            yield event.text
