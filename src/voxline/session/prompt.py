"""The LLM prompt for a turn, built the same way on the streaming and the recording path."""

from __future__ import annotations

from voxline.config import AgentConfig
from voxline.llm.base import ChatMessage


def build_prompt(agent: AgentConfig, history: list[ChatMessage], caller_text: str) -> list[ChatMessage]:
    """System prompt, the last ``history_turns`` exchanges, and what the caller just said."""
    keep = agent.llm.history_turns * 2
    recent = history[-keep:] if keep else []
    return [{"role": "system", "content": agent.system_prompt}, *recent, {"role": "user", "content": caller_text}]
