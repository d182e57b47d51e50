"""Running the tools a reply asks for: the business's over HTTPS, the built-in ones through the
call (end it, hand it to a person, take a message or another task of the agent file). Each use is
a ``tool-call`` event in the call record (arguments, outcome, milliseconds, what it answered); a
completed task (a message, a booking) is also a ``task`` event with its fields, and goes to the
business's webhook."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from voxline.config import AgentConfig, TaskSettings
from voxline.llm.base import ChatMessage
from voxline.llm.events import ToolCall
from voxline.session.farewell import is_farewell
from voxline.session.handoff import wants_a_person
from voxline.session.records import CallRecord
from voxline.tools.grounding import grounded
from voxline.tools.http_tools import HttpTools

MAX_SHOWN = 300  # characters of arguments and answers kept in an event


def believable(call: ToolCall, messages: list[ChatMessage]) -> bool:
    """Whether a small model's tool call may be acted on: its numbers were said by the caller,
    and a call that ends the conversation answers a caller who said goodbye (or asked for a
    person). The 0.5B model sometimes hangs up on "Do you have an emergency number?"."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if call.name == "end_call":
        return is_farewell(last)
    if call.name == "transfer_to_person":
        return wants_a_person(last)
    return grounded(call, messages)


@dataclass(frozen=True)
class ToolOutcome:
    call: ToolCall
    ok: bool
    say: str = ""  # spoken as it is ('' : the LLM phrases ``answer``)
    answer: str = ""  # what the tool answered, as JSON text, for the LLM
    error: str = ""


@dataclass(frozen=True)
class CallActions:
    """What the built-in tools do to the call, once the reply that used them has been heard."""

    end: Callable[[], object]
    transfer: Callable[[], object]


class ToolUser:
    def __init__(
        self, agent: AgentConfig, http: HttpTools | None, record: CallRecord, log: logging.LoggerAdapter
    ) -> None:
        self._agent = agent
        self._http = http
        self._record = record
        self._log = log

    async def use(self, turn: int, call: ToolCall, actions: CallActions) -> ToolOutcome:
        started = time.monotonic()
        arguments = json.dumps(call.arguments, ensure_ascii=False)[:MAX_SHOWN]
        try:
            outcome = await self._run(call, actions)
        except asyncio.CancelledError:  # the caller spoke over it: its answer is not wanted
            ms = round((time.monotonic() - started) * 1000, 1)
            self._record.event("tool-call", turn=turn, name=call.name, arguments=arguments, outcome="cancelled", ms=ms)
            raise
        ms = round((time.monotonic() - started) * 1000, 1)
        self._log.info("tool %s: %s in %.0f ms", call.name, "ok" if outcome.ok else outcome.error, ms)
        self._record.event(
            "tool-call",
            turn=turn,
            name=call.name,
            arguments=arguments,
            outcome="ok" if outcome.ok else "failed",
            ms=ms,
            answer=(outcome.say or outcome.answer)[:MAX_SHOWN],
            error=outcome.error,
        )
        return outcome

    async def _run(self, call: ToolCall, actions: CallActions) -> ToolOutcome:
        agent = self._agent
        if call.name in agent.builtin_tools:
            if call.name == "end_call":
                actions.end()
                return ToolOutcome(call, ok=True, say=agent.goodbye)
            if call.name == "transfer_to_person":
                actions.transfer()
                return ToolOutcome(call, ok=True, say=agent.transfer.phrase)
            return self._complete(agent.messages, call)
        if (task := next((t for t in agent.tasks if t.name == call.name), None)) is not None:
            return self._complete(task, call)
        if self._http is None or not self._http.knows(call.name):
            return ToolOutcome(call, ok=False, error="no such tool")
        answer = await self._http.call(call.name, call.arguments)
        if not answer.ok:
            return ToolOutcome(call, ok=False, error=answer.error)
        say = answer.say(self._http.settings(call.name).say, call.arguments)
        return ToolOutcome(call, ok=True, say=say, answer=json.dumps(answer.data, ensure_ascii=False))

    def _complete(self, task: TaskSettings, call: ToolCall) -> ToolOutcome:
        """A task's fields: a missing one is asked for; complete, it is stored with the call, sent
        to the business's webhook, and read back to the caller."""
        fields = {name: str(call.arguments.get(name, "")).strip() for name in task.fields}
        missing = [name for name, value in fields.items() if not value]
        if missing:
            return ToolOutcome(call, ok=True, say=task.ask_missing.format(field=missing[0].replace("_", " ")))
        self._record.event("task", task=task.name, fields=fields)
        if task.webhook_url and self._http is not None:
            payload = {
                "kind": "task",
                "task": task.name,
                "call_sid": self._record.call_sid,
                "caller": self._record.caller,
                "at": time.time(),
                "fields": fields,
            }
            self._http.deliver(task.webhook_url, task.webhook_secret_env, payload)
        read_back = {name: spelled(value) if name in task.spell else value for name, value in fields.items()}
        return ToolOutcome(call, ok=True, say=task.saved.format(**read_back))


def spelled(value: str) -> str:
    """Digit by digit, as a person reads a number back: "415 555 0123" → "4 1 5, 5 5 5, 0 1 2 3"."""
    groups = [" ".join(group) for group in re.findall(r"\d+", value)]
    return ", ".join(groups) if groups else value
