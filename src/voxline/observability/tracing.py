"""Optional OpenTelemetry traces: one span per turn, one child span per stage.

Off unless an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``, the standard
variable), and then the ``otel`` extra must be installed. Spans are built when a turn ends, from
the stage times the turn already keeps, so tracing adds nothing to the audio path: no span is
open while the caller waits, and export happens in the SDK's background thread.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)

# Stage spans, in order: each runs from the previous stage's time to its own.
STAGE_SPANS = (
    ("turn_detected", "turn detection"),
    ("stt_final", "speech-to-text"),
    ("llm_first_token", "LLM first token"),
    ("first_audio", "TTS first audio"),
    ("first_frame_sent", "first frame sent"),
    ("first_mark_echoed", "played to the caller"),
)


class TurnTracer(Protocol):
    def turn(
        self,
        call_sid: str,
        path: str,
        turn: int,
        speech_end_wall_s: float,
        stages_ms: dict[str, float | None],
        completed_ms: float,
        interrupted: bool,
        failed: bool,
    ) -> None: ...

    def shutdown(self) -> None: ...


class NoTracer:
    """Tracing off: nothing is built."""

    def turn(self, *args, **kwargs) -> None:
        return None

    def shutdown(self) -> None:
        return None


class OtlpTracer:
    """Exports each turn as a trace over OTLP/HTTP (protobuf), batched in the SDK's own thread."""

    def __init__(self, endpoint: str, service_name: str = "voxline") -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # A provider of our own, not the process-global one: two apps in one process stay apart.
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"), schedule_delay_millis=1000
            )
        )
        self._tracer = self._provider.get_tracer("voxline")
        log.info("OpenTelemetry traces go to %s", endpoint)

    def turn(
        self,
        call_sid: str,
        path: str,
        turn: int,
        speech_end_wall_s: float,
        stages_ms: dict[str, float | None],
        completed_ms: float,
        interrupted: bool,
        failed: bool,
    ) -> None:
        from opentelemetry import trace

        start_ns = int(speech_end_wall_s * 1e9)

        def at(ms: float) -> int:
            return start_ns + int(ms * 1e6)

        root = self._tracer.start_span(
            "turn",
            start_time=start_ns,
            attributes={
                "voxline.call_sid": call_sid,
                "voxline.path": path,
                "voxline.turn": turn,
                "voxline.interrupted": interrupted,
                "voxline.failed": failed,
                **{f"voxline.stage_ms.{k}": v for k, v in stages_ms.items() if v is not None},
            },
        )
        context = trace.set_span_in_context(root)
        previous = 0.0
        # In the order they were reached: a reply started at the pause is transcribed (and may be
        # written and synthesized) before the turn is confirmed.
        reached_stages = [
            (reached, stage, title) for stage, title in STAGE_SPANS if (reached := stages_ms.get(stage)) is not None
        ]
        for reached, stage, title in sorted(reached_stages, key=lambda item: item[0]):
            span = self._tracer.start_span(
                title, context=context, start_time=at(previous), attributes={"voxline.stage": stage}
            )
            span.end(end_time=at(max(reached, previous)))
            previous = max(reached, previous)
        root.end(end_time=at(max(completed_ms, previous)))

    def shutdown(self) -> None:
        self._provider.shutdown()


def make_tracer(endpoint: str) -> TurnTracer:
    if not endpoint:
        return NoTracer()
    try:
        return OtlpTracer(endpoint)
    except ImportError:
        log.error(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
            "(pip install 'voxline[otel]'); traces are off"
        )
        return NoTracer()


def wall_clock_of(monotonic_s: float) -> float:
    """The wall-clock time of a past monotonic timestamp."""
    return time.time() - (time.monotonic() - monotonic_s)
