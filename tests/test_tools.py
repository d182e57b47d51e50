"""Tools the agent calls: the business's HTTPS endpoints (here on loopback: a fast, a slow and a
failing one), the built-in ones (end the call, take a message, signed to the business's webhook),
with the hosted LLM's function calling (a local server speaking OpenAI's protocol) and the
embedded LLM's own chat-template tool calls."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import ACCOUNT_SID, AUTH_TOKEN
from voxline.config import AgentConfig, load_agent
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.fakes.twilio_server import FakeTwilioRest
from voxline.llm.events import ToolCall
from voxline.llm.llama import parse_tool_calls
from voxline.llm.openai_compat import OpenAICompatibleChat
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.loopback import LoopbackServer
from voxline.simulator.voices import speech_from_wav
from voxline.tools.definitions import tool_definitions
from voxline.tools.grounding import grounded
from voxline.tools.http_tools import signature

pytestmark = pytest.mark.e2e

SECRET = "webhook-secret-0123"
ORDER = {"order_number": "48213377"}


class BusinessEndpoints(LoopbackServer):
    """The business's side: an order lookup (answer after ``delay_s``), a broken endpoint, and
    the webhook that receives messages (answering ``webhook_statuses`` in turn, then 200)."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.answer: dict = {"status": "shipped", "expected": "Tuesday"}
        self.lookups: list[tuple[dict, str]] = []  # (arguments, Authorization header)
        self.webhook_statuses: list[int] = []
        self.deliveries: list[tuple[bytes, str]] = []  # (body, signature header)
        super().__init__(
            Starlette(
                routes=[
                    Route("/orders/status", self._status, methods=["POST"]),
                    Route("/broken", self._broken, methods=["POST"]),
                    Route("/webhook", self._webhook, methods=["POST"]),
                ]
            )
        )

    async def _status(self, request: Request) -> Response:
        self.lookups.append((await request.json(), request.headers.get("authorization", "")))
        await asyncio.sleep(self.delay_s)
        return JSONResponse(self.answer)

    async def _broken(self, request: Request) -> Response:
        return JSONResponse({"error": "database down"}, status_code=500)

    async def _webhook(self, request: Request) -> Response:
        self.deliveries.append((await request.body(), request.headers.get("x-voxline-signature", "")))
        return Response(status_code=self.webhook_statuses.pop(0) if self.webhook_statuses else 200)


def tools_agent(
    tmp_path, endpoints: BusinessEndpoints, say: str = "", greeting: str = "Hello.", timeout_s: float = 3
) -> str:
    """The packaged front desk with two tools, the built-ins, and the business's webhook."""
    text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    top = ['builtin_tools = ["end_call", "take_message"]', "filler_after_ms = 400"]  # before any table
    if greeting:
        text = text.replace(text[text.index("greeting = ") : text.index("\n", text.index("greeting = "))], "")
        top.append(f'greeting = "{greeting}"')
    tables = f"""
[[tools]]
name = "order_status"
description = "Look up where a customer's order is, by its order number."
parameters.type = "object"
parameters.required = ["order_number"]
parameters.properties.order_number = {{ type = "string", description = "The order number, digits only." }}
url = "{endpoints.url}/orders/status"
timeout_s = {timeout_s}
headers = {{ Authorization = "Bearer ${{ORDERS_TOKEN}}" }}
say = "{say}"

[[tools]]
name = "stock_level"
description = "How many of a part are in stock."
url = "{endpoints.url}/broken"

[[tasks]]
name = "book_appointment"
description = "Book an appointment once the caller has given their name, the day and their phone number."
fields = {{ name = "The caller's name.", day = "The day they want.", phone = "Their phone number, digits only." }}
spell = ["phone"]
saved = "Thank you {{name}}, you are booked for {{day}}. We will call {{phone}} if anything changes."
webhook_url = "{endpoints.url}/webhook"
webhook_secret_env = "TEST_WEBHOOK_SECRET"

[messages]
webhook_url = "{endpoints.url}/webhook"
webhook_secret_env = "TEST_WEBHOOK_SECRET"
"""
    path = tmp_path / "tools.toml"
    path.write_text("\n".join(top) + "\n" + text + tables, encoding="utf-8")
    return str(path)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("ORDERS_TOKEN", "orders-token-42")
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)


# -- units ------------------------------------------------------------------------------------------
def test_the_embedded_models_tool_calls_are_read_with_or_without_their_tags() -> None:
    names = {"order_status", "take_message"}
    bare = '{"name": "order_status", "arguments": {"order_number": "48213377"}}'
    assert parse_tool_calls(bare, names) == [ToolCall("call_1", "order_status", ORDER)]
    assert parse_tool_calls(f"<tool_call>\n{bare}\n</tool_call>", names) == [ToolCall("call_1", "order_status", ORDER)]
    assert parse_tool_calls('{"name": "order_status", "arguments": "{\\"order_number\\": \\"1\\"}"}', names)
    assert parse_tool_calls('{"name": "refund_everyone", "arguments": {}}', names) == []  # not a tool it has
    assert parse_tool_calls('{"name": "order_status", "arguments": {"order', names) == []  # cut short


def test_numbers_the_caller_never_said_are_not_taken_from_a_small_model() -> None:
    said = [{"role": "user", "content": "My order number is 4821 3377."}]
    assert grounded(ToolCall("1", "order_status", ORDER), said)  # type: ignore[arg-type]
    walk_in = [{"role": "user", "content": "Do you take walk-ins?"}]
    invented = ToolCall("1", "take_message", {"name": "John", "phone": "555-0199", "message": "walk-in"})
    assert not grounded(invented, walk_in)  # type: ignore[arg-type]
    assert grounded(ToolCall("1", "end_call", {}), walk_in)  # type: ignore[arg-type]


def test_the_llm_sees_the_agent_files_tools_and_the_builtins_it_turned_on(tmp_path, env) -> None:
    endpoints = BusinessEndpoints()
    agent = load_agent(Path(tools_agent(tmp_path, endpoints)))
    tools = {t["function"]["name"]: t["function"] for t in tool_definitions(agent)}
    assert set(tools) == {"order_status", "stock_level", "book_appointment", "end_call", "take_message"}
    assert tools["book_appointment"]["parameters"]["required"] == ["name", "day", "phone"]
    assert tools["take_message"]["parameters"]["required"] == ["name", "phone", "message"]
    assert tools["order_status"]["parameters"]["required"] == ["order_number"]
    assert agent.tools[0].resolved_headers() == {"Authorization": "Bearer orders-token-42"}


@pytest.mark.parametrize(
    ("tool", "error"),
    [
        ({"url": "http://orders.example.com/x"}, "must be https"),
        ({"name": "end_call"}, "built-in tool's name"),
        ({"headers": {"Authorization": "Bearer ${NOT_SET_ANYWHERE_42}"}}, "NOT_SET_ANYWHERE_42 is not set"),
        ({"parameters": {"type": "string"}}, "type 'object'"),
    ],
)
def test_a_malformed_tool_names_what_is_wrong(tool: dict, error: str) -> None:
    base = {"name": "lookup", "description": "Looks up.", "url": "https://orders.example.com/x"}
    with pytest.raises(ValueError, match=error):
        AgentConfig.model_validate({"greeting": "Hi.", "system_prompt": "You help.", "tools": [{**base, **tool}]})


# -- calls with a hosted LLM (OpenAI's function calling) -------------------------------------------------
def hosted(server, make_server, fake: FakeOpenAI, agent_file: str, **settings):
    running = make_server(stack=dataclasses.replace(server.services.stack), agent_file=agent_file, **settings)
    running.services.stack.llm = OpenAICompatibleChat(running.services.http, fake.base_url, API_KEY, "gpt-test")
    return running


def after_first_request(fake: FakeOpenAI, change) -> asyncio.Task:
    """``change()`` the fake LLM once it has answered its first request (the next turn differs)."""

    async def wait() -> None:
        while not fake.requests:
            await asyncio.sleep(0.02)
        change()

    return asyncio.create_task(wait())


def tool_events(record) -> list[dict]:
    return [e for e in record.events if e["kind"] == "tool-call"]


async def test_a_tool_answer_with_say_is_spoken_as_it_is(server, make_server, tmp_path, env, prompts):
    async with BusinessEndpoints() as endpoints, FakeOpenAI() as fake:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "order_status", ORDER
        endpoints.answer = {"say": "Order 48213377 shipped yesterday and arrives on Tuesday.", "status": "shipped"}
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints))
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("where is my order", speech_from_wav(prompts / "hello-world.wav"))]
        )
        record = await running.wait_record_closed(result.call_sid)
    assert endpoints.lookups == [(ORDER, "Bearer orders-token-42")]
    assert record.turns[-1].agent_text == "Order 48213377 shipped yesterday and arrives on Tuesday."
    assert len(fake.requests) == 1  # spoken from the answer: no second LLM pass
    (used,) = tool_events(record)
    assert used["name"] == "order_status" and used["outcome"] == "ok" and json.loads(used["arguments"]) == ORDER
    assert used["ms"] < 400
    assert [t["function"]["name"] for t in fake.requests[0]["body"]["tools"]] == [
        "order_status",
        "stock_level",
        "book_appointment",
        "end_call",
        "take_message",
    ]


async def test_a_slow_tool_gets_a_filler_and_the_llm_phrases_its_answer(server, make_server, tmp_path, env, prompts):
    async with BusinessEndpoints() as endpoints, FakeOpenAI("Your order shipped and arrives on Tuesday.") as fake:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "order_status", ORDER
        endpoints.delay_s = 1.2
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints))
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("where is my order", speech_from_wav(prompts / "hello-world.wav"))]
        )
        record = await running.wait_record_closed(result.call_sid)
    filler = running.services.agent.filler
    assert record.turns[-1].agent_text == f"{filler} Your order shipped and arrives on Tuesday."
    second = fake.requests[1]["body"]
    assert "tools" not in second  # the answer is phrased, no more tools
    request, answer = second["messages"][-2:]
    assert request["role"] == "assistant" and request["tool_calls"][0]["function"]["name"] == "order_status"
    assert answer == {
        "role": "tool",
        "tool_call_id": request["tool_calls"][0]["id"],
        "content": json.dumps(endpoints.answer),
    }
    assert tool_events(record)[0]["ms"] >= 1200
    heard = running.transcribe(result.heard(result.turns[0].speech_end, result.turns[0].reply_end)).lower()
    assert "moment" in heard and "tuesday" in heard


async def test_a_failing_tool_is_said_so_and_the_call_goes_on(server, make_server, tmp_path, env, prompts):
    async with BusinessEndpoints() as endpoints, FakeOpenAI("We are open from nine to six.") as fake:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "stock_level", {}
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints))
        call = SimulatedCall(running.url, AUTH_TOKEN)

        switch = after_first_request(fake, lambda: setattr(fake, "mode", "ok"))  # words next
        speech = speech_from_wav(prompts / "hello-world.wav")
        result = await call.run([CallerTurn("stock?", speech), CallerTurn("hours?", speech)])
        await switch
        record = await running.wait_record_closed(result.call_sid)
    first, second = record.turns[-2:]
    assert first.agent_text == running.services.agent.tool_failed
    assert tool_events(record)[0]["outcome"] == "failed" and tool_events(record)[0]["error"] == "HTTP 500"
    assert second.agent_text == "We are open from nine to six." and record.outcome == "completed"


async def test_a_message_is_stored_with_the_call_and_signed_to_the_webhook(server, make_server, tmp_path, env, prompts):
    message = {"name": "John Smith", "phone": "4155550123", "message": "Please call me about my filling."}
    async with BusinessEndpoints() as endpoints, FakeOpenAI() as fake:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "take_message", message
        endpoints.webhook_statuses = [503]  # the business's endpoint fails once: the delivery is retried
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints))
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("message", speech_from_wav(prompts / "hello-world.wav"))]
        )
        record = await running.wait_record_closed(result.call_sid)
        for _ in range(100):
            if len(endpoints.deliveries) >= 2:
                break
            await asyncio.sleep(0.05)
    assert record.turns[-1].agent_text == running.services.agent.messages.saved
    stored = next(e for e in record.events if e["kind"] == "task")
    assert stored["task"] == "take_message" and stored["fields"] == message
    assert len(endpoints.deliveries) == 2  # the 503, then the retry
    body, signed = endpoints.deliveries[-1]
    assert signed == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest() == signature(SECRET, body)
    payload = json.loads(body)
    assert payload["kind"] == "task" and payload["task"] == "take_message"
    assert payload["call_sid"] == result.call_sid and payload["fields"] == message


async def test_the_end_call_tool_says_goodbye_then_hangs_up(server, make_server, tmp_path, env, prompts):
    async with BusinessEndpoints() as endpoints, FakeOpenAI() as fake, FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as rest:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "end_call", {}
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints), twilio_api_base_url=rest.url)
        call = SimulatedCall(running.url, AUTH_TOKEN)
        rest.add_call(call.call_sid)
        rest.on_end = lambda _sid: call.end_call()
        result = await call.run([CallerTurn("done", speech_from_wav(prompts / "hello-world.wav"))], linger_s=10)
        record = await running.wait_record_closed(result.call_sid)
    assert record.turns[-1].agent_text == running.services.agent.goodbye and record.turns[-1].outcome == "done"
    assert rest.requests[-1].params == {"Status": "completed"}
    assert any(e["kind"] == "hung-up" for e in record.events)


async def test_speaking_over_a_slow_tool_cancels_its_reply(server, make_server, tmp_path, env, prompts):
    async with BusinessEndpoints() as endpoints, FakeOpenAI("We are open from nine to six.") as fake:
        fake.mode, fake.tool_name, fake.tool_arguments = "tools", "order_status", ORDER
        endpoints.delay_s = 6.0  # the caller hears the filler, waits a second, and speaks again
        endpoints.answer = {"say": "Order 48213377 shipped yesterday."}
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints, timeout_s=10))
        speech = speech_from_wav(prompts / "hello-world.wav")
        turns = [CallerTurn("order", speech), CallerTurn("while it looks", speech)]

        switch = after_first_request(fake, lambda: setattr(fake, "mode", "ok"))  # words next
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(turns)
        await switch
        record = await running.wait_record_closed(result.call_sid)
    first = next(t for t in record.turns if t.kind == "answer")
    assert first.outcome in ("interrupted", "discarded") and "shipped" not in first.heard_text
    assert not any("shipped" in m["content"] for m in record.history)
    assert tool_events(record)[0]["outcome"] == "cancelled"


# -- the embedded LLM ------------------------------------------------------------------------------------
async def test_the_embedded_llm_looks_up_a_typed_order_number(make_server, tmp_path, env):
    async with BusinessEndpoints() as endpoints:
        agent = tools_agent(
            tmp_path,
            endpoints,
            say="Order {order_number} is {status}; it arrives on {expected}.",
            greeting="Thanks for calling. Type your order number, then press the hash key.",
        )
        with open(agent, "a", encoding="utf-8") as file:
            file.write(
                '\n[keypad]\n[[keypad.collect]]\nname = "order number"\nask = ["order number"]\nmin_digits = 6\n'
            )
        running = make_server(agent_file=agent)
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("keys", np.zeros(0, np.int16), dtmf="48213377#")]
        )
        record = await running.wait_record_closed(result.call_sid)
    assert endpoints.lookups and endpoints.lookups[0][0] == ORDER
    assert record.turns[-1].agent_text.endswith("Order 48213377 is shipped; it arrives on Tuesday.")


async def test_a_booking_collects_its_fields_reads_them_back_and_is_returned_by_the_api(
    server, make_server, tmp_path, env, prompts
):
    import httpx

    from conftest import API_TOKEN

    async with BusinessEndpoints() as endpoints, FakeOpenAI() as fake:
        fake.mode, fake.tool_name = "tools", "book_appointment"
        fake.tool_arguments = {"name": "Priya", "day": "Friday"}  # the phone number is not given yet
        running = hosted(server, make_server, fake, tools_agent(tmp_path, endpoints))
        speech = speech_from_wav(prompts / "hello-world.wav")

        phone = {"name": "Priya", "day": "Friday", "phone": "415 555 0134"}
        given = after_first_request(fake, lambda: setattr(fake, "tool_arguments", phone))
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("book", speech), CallerTurn("phone", speech)]
        )
        await given
        record = await running.wait_record_closed(result.call_sid)
        async with httpx.AsyncClient(base_url=running.url) as client:
            shown = (
                await client.get(f"/api/calls/{result.call_sid}", headers={"Authorization": f"Bearer {API_TOKEN}"})
            ).json()
        for _ in range(100):
            if endpoints.deliveries:
                break
            await asyncio.sleep(0.05)
    asked, booked = (t.agent_text for t in record.turns[-2:])
    assert asked == "Could you also tell me your phone?"
    assert (
        booked == "Thank you Priya, you are booked for Friday. We will call 4 1 5, 5 5 5, 0 1 3 4 if anything changes."
    )
    task = next(e for e in shown["events"] if e["kind"] == "task")
    assert task["details"] == {
        "task": "book_appointment",
        "fields": {"name": "Priya", "day": "Friday", "phone": "415 555 0134"},
    }
    assert json.loads(endpoints.deliveries[0][0])["task"] == "book_appointment"
