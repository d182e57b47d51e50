"""The agent's tools as the LLM sees them (OpenAI's function-calling shape, which Qwen 2.5's chat
template reads too): the agent file's ``[[tools]]`` and the ``builtin_tools`` it turns on."""

from __future__ import annotations

from typing import Any

from voxline.config import AgentConfig

BUILTIN_DESCRIPTIONS = {
    "end_call": "End the phone call, once the caller has said they need nothing more.",
    "transfer_to_person": "Put the caller through to a member of staff, when they ask for a person.",
    "take_message": "Take a message for the staff when the caller wants to be called back.",
}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def tool_definitions(agent: AgentConfig) -> list[dict[str, Any]]:
    tools = [_function(tool.name, tool.description, tool.parameters) for tool in agent.tools]
    for name in agent.builtin_tools:
        parameters: dict[str, Any] = {"type": "object", "properties": {}}
        if name == "take_message":
            fields = agent.messages.fields
            parameters = {
                "type": "object",
                "properties": {field: {"type": "string", "description": text} for field, text in fields.items()},
                "required": list(fields),
            }
        tools.append(_function(name, BUILTIN_DESCRIPTIONS[name], parameters))
    return tools
