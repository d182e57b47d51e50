"""The LLM prompt for a turn, built the same way on the streaming and the recording path."""

from __future__ import annotations

from voxline.config import AgentConfig
from voxline.knowledge.facts import FactBook
from voxline.knowledge.hours_questions import answer_hours
from voxline.knowledge.schedule import Schedule
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


def known_answer(schedule: Schedule | None, facts: FactBook, stt_language: str, caller_text: str) -> str | None:
    """What the agent knows for certain, said instead of the LLM's answer (English calls; other
    languages go to the LLM): a short question about the opening hours, from the schedule; a
    yes/no question that exactly one of the agent's facts answers, with that fact."""
    if not stt_language.startswith("en"):
        return None
    if schedule is not None and (hours := answer_hours(caller_text, schedule)) is not None:
        return hours
    return facts.answer(caller_text)
