"""/metrics: calls, turns, stage and voice-to-voice histograms, barge-ins, loop lag, frame lateness."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import AUTH_TOKEN
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

pytestmark = pytest.mark.e2e


async def scrape(url: str) -> dict[tuple[str, tuple], float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url + "/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_call_with_a_barge_in_shows_up_in_the_metrics(server, librivox):
    before = await scrape(server.url)
    turns = [
        CallerTurn("interrupt", speech_from_wav(librivox["0930"]), barge_in_after_s=0.8),
        CallerTurn("second", speech_from_wav(librivox["0880"])),
    ]
    result = await SimulatedCall(server.url, AUTH_TOKEN).run(turns)
    await server.wait_record_closed(result.call_sid)
    after = await scrape(server.url)

    assert (
        value(after, "voxline_calls_total", path="streaming", outcome="completed")
        == value(before, "voxline_calls_total", path="streaming", outcome="completed") + 1
    )
    assert value(after, "voxline_barge_ins_total") >= value(before, "voxline_barge_ins_total") + 1
    answered = sum(value(after, "voxline_turns_total", path="streaming", interrupted=i) for i in ("true", "false"))
    assert (
        answered
        >= sum(value(before, "voxline_turns_total", path="streaming", interrupted=i) for i in ("true", "false")) + 2
    )
    for stage in ("stt_final", "llm_first_token", "first_audio", "first_frame_sent"):
        assert value(after, "voxline_turn_stage_seconds_count", path="streaming", stage=stage) > value(
            before, "voxline_turn_stage_seconds_count", path="streaming", stage=stage
        )
    assert value(after, "voxline_voice_to_voice_seconds_count", path="streaming") > value(
        before, "voxline_voice_to_voice_seconds_count", path="streaming"
    )
    assert value(after, "voxline_event_loop_lag_seconds_count") > 0
    assert value(after, "voxline_outbound_frame_lateness_seconds_count") > 0
    assert value(after, "voxline_gc_pause_seconds_count", generation="0") > value(
        before, "voxline_gc_pause_seconds_count", generation="0"
    )
    assert value(after, "voxline_active_calls", path="streaming") == 0


def test_garbage_collector_passes_are_timed_until_the_watch_stops():
    import gc

    from voxline.observability.metrics import Metrics

    metrics = Metrics()
    stop = metrics.watch_garbage_collector()
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        stop()
    count = {
        g: metrics.registry.get_sample_value("voxline_gc_pause_seconds_count", {"generation": str(g)}) for g in range(3)
    }
    assert count[1] >= 1 and count[2] >= 1
    total = metrics.registry.get_sample_value("voxline_gc_pause_seconds_sum", {"generation": "2"})
    assert 0 < total < 5
    gc.collect(2)  # after stop(): no longer timed
    assert metrics.registry.get_sample_value("voxline_gc_pause_seconds_count", {"generation": "2"}) == count[2]
