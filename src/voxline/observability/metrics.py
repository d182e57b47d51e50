"""Prometheus metrics, one registry per application (no process-global state).

Stage histograms hold each turn's stage times after the caller's end of speech; the
voice-to-voice histogram holds, per path, the server's view of the caller's wait (streaming:
end of speech → first frame sent; recording: silence timeout + processing).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from voxline.observability.tracing import NoTracer, TurnTracer

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
SMALL_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
GC_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
LOOP_LAG_INTERVAL_S = 0.25
LATE_FRAME_S = 0.02


class Metrics:
    def __init__(self, tracer: TurnTracer | None = None) -> None:
        self.tracer: TurnTracer = tracer or NoTracer()  # OpenTelemetry spans per turn, when configured
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("voxline_active_calls", "Calls in progress.", ["path"], registry=r)
        self.calls = Counter("voxline_calls", "Calls ended, by outcome.", ["path", "outcome"], registry=r)
        self.turns = Counter("voxline_turns", "Caller turns answered.", ["path", "interrupted"], registry=r)
        self.stage = Histogram(
            "voxline_turn_stage_seconds",
            "Stage time after the caller's end of speech.",
            ["path", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.voice_to_voice = Histogram(
            "voxline_voice_to_voice_seconds",
            "End of the caller's speech to the reply's first audio, server side.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.barge_ins = Counter("voxline_barge_ins", "Times a caller interrupted the agent.", registry=r)
        self.interruptions = Counter(
            "voxline_agent_interrupted",
            "Replies cut short by something other than the caller's voice.",
            ["reason"],
            registry=r,
        )
        self.overlaps = Counter(
            "voxline_caller_overlaps",
            "Speech over the agent that paused it without taking the turn (it resumed).",
            ["kind"],  # backchannel | false-interruption
            registry=r,
        )
        self.speculative_replies = Counter(
            "voxline_speculative_replies",
            "Replies started at a pause before the turn was confirmed.",
            ["outcome"],  # used | dropped
            registry=r,
        )
        self.provider_errors = Counter(
            "voxline_provider_errors", "Failures of a speech or language provider.", ["provider", "kind"], registry=r
        )
        self.internal_errors = Counter(
            "voxline_internal_errors", "Call tasks that failed with an unexpected error.", ["task"], registry=r
        )
        self.loop_lag = Histogram(
            "voxline_event_loop_lag_seconds", "How late the event loop ran a timer.", buckets=SMALL_BUCKETS, registry=r
        )
        self.frame_lateness = Histogram(
            "voxline_outbound_frame_lateness_seconds",
            "How long the line ran dry before a frame of a reply was sent.",
            buckets=SMALL_BUCKETS,
            registry=r,
        )
        self.late_frames = Counter(
            "voxline_outbound_frames_late", "Outbound sends more than 20 ms late (the caller heard a gap).", registry=r
        )
        self.gc_pause = Histogram(
            "voxline_gc_pause_seconds",
            "Garbage-collector passes, by generation: every call waits through each one.",
            ["generation"],
            buckets=GC_BUCKETS,
            registry=r,
        )

    def watch_tts_cache(self, cache) -> None:
        """Export the voice stack's TTS cache counters (the cache belongs to the stack; read at each scrape)."""
        self.registry.register(_TtsCacheCollector(cache))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def frame_sent(self, lateness_s: float) -> None:
        self.frame_lateness.observe(lateness_s)
        if lateness_s > LATE_FRAME_S:
            self.late_frames.inc()

    def turn(self, path: str, stages_ms: dict[str, float | None], interrupted: bool) -> None:
        self.turns.labels(path, str(interrupted).lower()).inc()
        for stage, value in stages_ms.items():
            if value is not None:
                self.stage.labels(path, stage).observe(value / 1000)

    def watch_garbage_collector(self) -> Callable[[], None]:
        """Time each garbage-collector pass (``gc.callbacks``); returns what stops it.

        A pass stops every call's event loop, so its length lands in some turn's latency and in
        frame timing: this shows whether collections, not load, are behind a latency tail."""
        by_generation = [self.gc_pause.labels(str(generation)) for generation in range(3)]
        started = 0.0

        def timed(phase: str, info: dict) -> None:
            nonlocal started
            if phase == "start":
                started = time.perf_counter()
            else:
                by_generation[info["generation"]].observe(time.perf_counter() - started)

        gc.callbacks.append(timed)
        return lambda: gc.callbacks.remove(timed)

    async def watch_event_loop(self) -> None:
        """Sleeps a fixed interval and records how much later than asked it woke up."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.loop_lag.observe(max(0.0, time.monotonic() - asked - LOOP_LAG_INTERVAL_S))


class _TtsCacheCollector:
    def __init__(self, cache) -> None:
        self._cache = cache

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lookups = CounterMetricFamily(
            "voxline_tts_cache_lookups", "TTS cache lookups: a hit plays with no synthesis.", labels=["result"]
        )
        lookups.add_metric(["hit"], self._cache.hits)
        lookups.add_metric(["miss"], self._cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "voxline_tts_cache_memory_bytes", "Audio held by the in-memory TTS cache.", value=self._cache.memory_bytes
        )
