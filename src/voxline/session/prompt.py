"""The LLM prompt for a turn, built the same way on the streaming and the recording path."""

from __future__ import annotations

from voxline.config import AgentConfig
from voxline.llm.base import ChatMessage


def build_prompt(
    agent: AgentConfig, history: list[ChatMessage], caller_text: str, instruction: str = ""
) -> list[ChatMessage]:
    """System prompt (plus the chosen language's instruction), the last ``history_turns`` exchanges,
    and what the caller just said."""
    keep = agent.llm.history_turns * 2
    recent = history[-keep:] if keep else []
    system = f"{agent.system_prompt}\n{instruction}" if instruction else agent.system_prompt
    return [{"role": "system", "content": system}, *recent, {"role": "user", "content": caller_text}]
