"""OpenTelemetry: each turn arrives at an OTLP/HTTP collector as a span with one child per stage."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import AUTH_TOKEN
from voxline.fakes.otlp_collector import FakeOtlpCollector
from voxline.observability.tracing import NoTracer, make_tracer
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav


def test_tracing_is_off_without_an_endpoint():
    assert isinstance(make_tracer(""), NoTracer)


async def test_a_turn_of_a_real_call_is_exported_as_a_trace(make_server, librivox):
    async with FakeOtlpCollector() as collector:
        running = make_server(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
        result = await SimulatedCall(running.url, AUTH_TOKEN).run(
            [CallerTurn("question", speech_from_wav(librivox["0880"]))]
        )
        record = await running.wait_record_closed(result.call_sid)
        deadline = time.monotonic() + 10
        while not any(s.name == "turn" for s in collector.spans) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    turns = [s for s in collector.spans if s.name == "turn"]
    assert collector.service_names == {"voxline"}
    assert len(turns) == len(record.turns) >= 1
    root = turns[0]
    assert root.attributes["voxline.call_sid"] == result.call_sid
    assert root.attributes["voxline.turn"] == record.turns[0].index
    children = sorted((s for s in collector.spans if s.parent_span_id == root.span_id), key=lambda s: s.end_ns)
    # In the order reached: a reply started at the pause is transcribed before the turn is confirmed.
    assert {c.name for c in children} >= {
        "turn detection",
        "speech-to-text",
        "LLM first token",
        "TTS first audio",
        "first frame sent",
    }
    assert [c.name for c in children].index("speech-to-text") < [c.name for c in children].index("first frame sent")
    assert all(c.trace_id == root.trace_id for c in children)
    # Stages follow one another, inside the turn, and match the call record's stage times.
    for earlier, later in zip(children, children[1:]):
        assert earlier.end_ns == later.start_ns
    assert root.start_ns <= children[0].start_ns and children[-1].end_ns <= root.end_ns
    for child in children:  # each ends when its stage was reached, after the end of speech
        reached_ms = (child.end_ns - root.start_ns) / 1e6
        assert reached_ms == pytest.approx(record.turns[0].stages_ms[child.attributes["voxline.stage"]], abs=1.0)
