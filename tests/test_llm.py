"""The embedded LLM: streamed replies, cancellation, and prefill of the caller's words."""

from __future__ import annotations

import pytest

from voxline.config import Settings, load_agent
from voxline.engine import files
from voxline.llm.events import texts
from voxline.llm.llama import LlamaChat
from voxline.providers.pool import ModelPool


@pytest.fixture(scope="module")
def llm_and_prompt():
    agent = load_agent(None)
    llm = LlamaChat(agent.llm.model, files.llm_gguf(agent.llm.model, Settings().cache_dir), ModelPool(1), 2, 2048)
    llm.warm_up(agent.system_prompt)
    return llm, {"role": "system", "content": agent.system_prompt}


async def test_reply_streams_in_pieces_and_uses_the_facts(llm_and_prompt):
    llm, system = llm_and_prompt
    pieces = [
        p
        async for p in texts(
            llm.stream([system, {"role": "user", "content": "How much does a cleaning cost?"}], 60, 0.0)
        )
    ]
    assert len(pieces) > 3
    assert "80" in "".join(pieces) or "eighty" in "".join(pieces).lower()


async def test_closing_the_stream_stops_generation(llm_and_prompt):
    llm, system = llm_and_prompt
    stream = texts(llm.stream([system, {"role": "user", "content": "Tell me everything about the clinic."}], 80, 0.0))
    first = await stream.__anext__()
    await stream.aclose()
    assert first
    # the model is free again at once: another reply can be generated
    again = [p async for p in texts(llm.stream([system, {"role": "user", "content": "Where are you?"}], 20, 0.0))]
    assert again


def test_prefill_evaluates_only_what_is_new(llm_and_prompt):
    llm, system = llm_and_prompt
    partial = [system, {"role": "user", "content": "Hello, I would like to book an appointment"}]
    longer = [
        system,
        {"role": "user", "content": "Hello, I would like to book an appointment for a cleaning next week"},
    ]
    first = llm.prefill_blocking(partial)
    assert 0 < first < 30  # the system prompt was already evaluated at warm-up
    assert llm.prefill_blocking(partial) == 0
    assert 0 < llm.prefill_blocking(longer) < first + 5
