"""The OpenAI-compatible LLM client against a local server that speaks the API's streaming protocol."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from voxline.config import AgentConfig, LlmSettings, Settings, effective_agent, load_agent
from voxline.errors import ProviderError
from voxline.fakes.openai_server import API_KEY, FakeOpenAI
from voxline.llm.events import texts
from voxline.llm.openai_compat import OpenAICompatibleChat

MESSAGES = [{"role": "system", "content": "You are a receptionist."}, {"role": "user", "content": "When are you open?"}]


def client_for(fake: FakeOpenAI, http: aiohttp.ClientSession, key: str = API_KEY, **kw) -> OpenAICompatibleChat:
    return OpenAICompatibleChat(http, fake.base_url, key, "gpt-test", **kw)


async def test_streams_the_reply_in_pieces_with_the_key_and_model():
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        pieces = [p async for p in texts(client_for(fake, http).stream(MESSAGES, 50, 0.0))]
    assert "".join(pieces) == fake.reply and len(pieces) > 3
    request = fake.requests[0]
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert request["body"] == {
        "model": "gpt-test",
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": 50,
        "temperature": 0.0,
    }


async def test_wrong_key_fails_at_once_with_the_providers_message(caplog):
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        with pytest.raises(ProviderError) as error:
            [p async for p in texts(client_for(fake, http, key="sk-wrong-secret").stream(MESSAGES, 50, 0.0))]
    assert error.value.kind == "401" and "Incorrect API key" in str(error.value)
    assert len(fake.requests) == 1
    assert "sk-wrong-secret" not in caplog.text and "sk-wrong-secret" not in str(error.value)


async def test_rate_limit_is_retried():
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.mode = "rate-limited-once"
        text = "".join([p async for p in texts(client_for(fake, http).stream(MESSAGES, 50, 0.0))])
    assert text == fake.reply and len(fake.requests) == 2


async def test_server_errors_are_retried_for_a_bounded_time_then_fail():
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.mode = "server-error"
        started = time.monotonic()
        with pytest.raises(ProviderError) as error:
            [p async for p in texts(client_for(fake, http, retry_window_s=1.0).stream(MESSAGES, 50, 0.0))]
        elapsed = time.monotonic() - started
    assert error.value.kind == "500" and 2 <= len(fake.requests) <= 6
    assert elapsed < 2.5


async def test_a_provider_that_times_out_fails_within_the_bound():
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.mode, fake.slow_s = "slow", 5.0
        started = time.monotonic()
        with pytest.raises(ProviderError) as error:
            [
                p
                async for p in texts(
                    client_for(fake, http, timeout_s=0.5, retry_window_s=0.6).stream(MESSAGES, 50, 0.0)
                )
            ]
        elapsed = time.monotonic() - started
        fake.slow_s = 0.0
    assert error.value.kind == "timeout"
    assert elapsed < 3.0


async def test_a_stream_dropped_half_way_keeps_what_came_and_raises():
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.mode = "drop"
        received: list[str] = []
        with pytest.raises(ProviderError) as error:
            async for piece in texts(client_for(fake, http).stream(MESSAGES, 50, 0.0)):
                received.append(piece)
    assert error.value.kind == "connection"
    assert received and fake.reply.startswith("".join(received)) and "".join(received) != fake.reply
    assert len(fake.requests) == 1  # no retry once words were spoken


async def test_a_reply_cut_short_gives_its_connection_back():
    """A barge-in closes the stream half-read, many times over: no connection stays held by it."""
    async with FakeOpenAI() as fake, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as http:
        llm = client_for(fake, http)
        for _ in range(6):  # more than the pool holds: a leaked connection would block the third
            stream = texts(llm.stream(MESSAGES, 50, 0.0))
            assert await asyncio.wait_for(anext(stream), 5.0)
            await stream.aclose()
        reply = await asyncio.wait_for(_joined(texts(llm.stream(MESSAGES, 50, 0.0))), 5.0)
    assert reply == fake.reply and len(fake.requests) == 7


async def test_finished_replies_reuse_one_connection():
    """Reading a reply to its end hands the connection back: the next turn pays no new connection."""
    created, reused = [], []
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(lambda *_: _append(created))
    trace.on_connection_reuseconn.append(lambda *_: _append(reused))
    async with FakeOpenAI() as fake, aiohttp.ClientSession(trace_configs=[trace]) as http:
        fake.end_after_done_s = 0.05  # the chunked stream's last bytes come in a later packet
        llm = client_for(fake, http)
        for _ in range(3):
            assert await asyncio.wait_for(_joined(texts(llm.stream(MESSAGES, 50, 0.0))), 5.0) == fake.reply
    assert (len(created), len(reused)) == (1, 2)


async def _append(into: list) -> None:
    into.append(1)


async def _joined(pieces) -> str:
    return "".join([p async for p in pieces])


def test_environment_overrides_the_agent_file(monkeypatch):
    agent = load_agent(None)
    chosen = effective_agent(agent, Settings(llm="openai", llm_model="llama-3.1-8b-instant"))
    assert (chosen.llm.provider, chosen.llm.model) == ("openai", "llama-3.1-8b-instant")
    assert effective_agent(agent, Settings()).llm == agent.llm
    with pytest.raises(ValueError):
        effective_agent(agent, Settings(llm="openai"))
    with pytest.raises(ValueError):
        effective_agent(agent, Settings(llm="embedded", llm_model="gpt-4o"))


def test_agent_file_can_choose_a_hosted_llm():
    agent = AgentConfig(
        greeting="Hi.", system_prompt="Be brief.", llm=LlmSettings(provider="openai", model="gpt-4o-mini")
    )
    assert effective_agent(agent, Settings()).llm.provider == "openai"


async def test_a_streamed_tool_call_arrives_as_one_typed_event_after_the_text():
    from voxline.llm.events import TextDelta, ToolCall

    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.mode = "tool-call"
        events = [e async for e in client_for(fake, http).stream(MESSAGES, 50, 0.0)]
    assert events[0] == TextDelta("Let me check.")
    assert events[1:] == [
        ToolCall(id="call_fake1", name="lookup_booking", arguments={"phone": "+15550001111", "day": "Saturday"})
    ]
