"""The agent's tools as the LLM sees them (OpenAI's function-calling shape, which Qwen 2.5's chat
template reads too): the agent file's ``[[tools]]`` and the ``builtin_tools`` it turns on."""

from __future__ import annotations

from typing import Any

from voxline.config import AgentConfig, TaskSettings

BUILTIN_DESCRIPTIONS = {
    "end_call": "End the phone call, once the caller has said they need nothing more.",
    "transfer_to_person": "Put the caller through to a member of staff, when they ask for a person.",
}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def _task(task: TaskSettings) -> dict[str, Any]:
    properties = {field: {"type": "string", "description": text} for field, text in task.fields.items()}
    return _function(
        task.name, task.description, {"type": "object", "properties": properties, "required": list(task.fields)}
    )


def tool_definitions(agent: AgentConfig) -> list[dict[str, Any]]:
    tools = [_function(tool.name, tool.description, tool.parameters) for tool in agent.tools]
    tools += [_task(task) for task in agent.tasks]
    for name in agent.builtin_tools:
        if name == "take_message":
            tools.append(_task(agent.messages))
        else:
            tools.append(_function(name, BUILTIN_DESCRIPTIONS[name], {"type": "object", "properties": {}}))
    return tools
