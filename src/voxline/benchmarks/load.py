"""``voxline bench load``, ``capacity`` and ``soak``: concurrent simulated calls against a real server.

A *step* runs N concurrent callers for a while against one server process and measures, over a
window that starts once every caller is on the line:

- voice-to-voice latency per turn as the caller feels it, and the overhead: that latency minus
  the end-of-turn silence and the fake providers' fixed latencies (what Voxline itself added);
- from the server's ``/metrics`` (differences over the window): outbound frame lateness and
  event-loop lag;
- from /proc: the server's CPU seconds per call-minute, its memory per call and descriptors;
- errors: failed or refused calls, error events and failed turns in call records, turns spoken
  but not recorded, server ERROR log lines.

``load`` steps N up until a step fails its limits and reports the largest N that passed, per
server CPU. ``capacity`` does the same on the embedded models with a voice-to-voice limit.
``soak`` runs one long step and samples memory and descriptors over time.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxline.benchmarks.fakes import FakeLatencies, fixed_floor_ms
from voxline.benchmarks.fleet import FleetSpec
from voxline.benchmarks.harness import BenchServer, FakeProviders, Fleets, split_cpus
from voxline.benchmarks.system import (
    Histogram,
    busy_cpus,
    cpu_pressure_us,
    cpu_seconds,
    fd_count,
    load_average,
    parse_metrics,
    rss_bytes,
)
from voxline.config import AgentConfig, load_agent

SIM_LAG_LIMIT_MS = 20.0  # a simulator whose loop is later than this measures itself, not the server


@dataclass
class Limits:
    overhead_p95_ms: float | None = 50.0
    frame_lateness_p99_ms: float = 20.0
    v2v_p95_ms: float | None = None
    # A simulator whose own loop is later than this measures itself, not the server. With the
    # embedded models (latencies in seconds, the simulator sharing the models' cores) it is looser.
    sim_lag_p99_ms: float = SIM_LAG_LIMIT_MS


@dataclass
class StepConfig:
    step_s: float = 60.0
    ramp_s: float = 5.0
    settle_s: float = 5.0  # after the ramp, before the window opens
    turns_per_call: int = 3
    sim_processes: int = 0  # 0: one per 150 callers
    sample_every_s: float = 2.0


@dataclass
class Step:
    calls: int
    window_s: float
    turns: int
    v2v_ms: dict
    overhead_ms: dict
    server_overhead_ms: dict  # the server's own view: its first frame sent after its end of speech, minus the floor
    frame_lateness_ms: dict
    late_frames_fraction: float | None
    loop_lag_ms: dict
    cpu_s_per_call_minute: float | None
    server_cpu_fraction: float
    rss_idle_mb: float
    rss_peak_mb: float
    memory_per_call_mb: float | None
    fds_peak: int
    calls_completed: int
    unanswered: int
    lost_turns: int
    errors: list[str]
    simulator: dict
    load_before: list[float]
    cpu_pressure: float | None = None  # fraction of the window some task waited for a CPU (others' work too)
    gc_pauses: dict = field(default_factory=dict)  # the server's garbage-collector passes in the window
    passed: bool = False
    valid: bool = True
    verdict: str = ""
    overheads: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    overhead_by_utterance_ms: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)


def pct(values: list[float], *qs: float) -> dict:
    if not values:
        return {f"p{q:g}": None for q in qs} | {"n": 0}
    arr = np.asarray(values, dtype=float)
    return {f"p{q:g}": round(float(np.percentile(arr, q)), 1) for q in qs} | {"n": int(arr.size)}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def run_step(
    server: BenchServer,
    calls: int,
    cfg: StepConfig,
    floor_ms: float,
    client_cpus: set[int],
    rss_idle: int,
    on_sample=None,
    server_floor_ms: float | None = None,
) -> Step:
    """N callers against ``server``; returns the measurements over the steady window."""
    load_before = [round(x, 2) for x in load_average()]
    now = time.monotonic()
    start_at = now + 2.0  # simulator processes need a moment to start
    window_start = start_at + cfg.ramp_s + cfg.settle_s
    deadline = window_start + cfg.step_s
    processes = cfg.sim_processes or math.ceil(calls / 150)
    spec = FleetSpec(
        base_url=server.url,
        auth_token=server.auth_token,
        api_token=server.api_token,
        slots=calls,
        start_at=start_at,
        deadline=deadline,
        ramp_s=cfg.ramp_s,
        turns_per_call=cfg.turns_per_call,
        cpus=client_cpus,
    )
    server.new_error_lines()
    fleets = Fleets(spec, processes)
    before = after = None
    pressure_before: int | None = None
    cpu_before = cpu_after = 0.0
    rss_peak, fds_peak = 0, 0
    samples: list[dict] = []
    next_sample = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if before is None and now >= window_start:
            before, cpu_before = parse_metrics(server.metrics_text()), cpu_seconds(server.pid)
            pressure_before = cpu_pressure_us()
        if now >= next_sample:
            rss, fds = rss_bytes(server.pid), fd_count(server.pid)
            rss_peak, fds_peak = max(rss_peak, rss), max(fds_peak, fds)
            sample = {
                "t": round(now - start_at, 1),
                "rss_mb": round(rss / 2**20, 1),
                "fds": fds,
                "cpu_s": round(cpu_seconds(server.pid), 2),
            }
            samples.append(sample)
            if on_sample:
                on_sample(sample)
            next_sample += cfg.sample_every_s
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    after, cpu_after = parse_metrics(server.metrics_text()), cpu_seconds(server.pid)
    pressure_after = cpu_pressure_us()
    window = cfg.step_s
    results = fleets.results(timeout_s=120)
    errors: list[str] = []
    turns: list[dict] = []
    sim: dict[str, Any] = {
        "detector_offset_ms": next((r["detector_offset_ms"] for r in results if "detector_offset_ms" in r), {}),
        "processes": processes,
        "loop_lag_p99_ms": 0.0,
        "max_send_lateness_ms": 0.0,
        "cpu_s": 0.0,
    }
    completed = unanswered = lost = 0
    server_first_frame: list[float] = []
    for result in results:
        if "fatal" in result:
            errors.append("simulator: " + result["fatal"])
            continue
        turns += result["turns"]
        server_first_frame += result["server_first_frame_ms"]
        errors += result["errors"]
        completed += result["calls"]
        unanswered += result["unanswered"]
        lost += result["lost_turns"]
        sim["loop_lag_p99_ms"] = max(sim["loop_lag_p99_ms"], result["loop_lag_ms"]["p99"] or 0.0)
        sim["max_send_lateness_ms"] = max(sim["max_send_lateness_ms"], round(result["max_send_lateness_s"] * 1000, 1))
        sim["cpu_s"] += round(result["cpu_s"], 1)
    errors += [f"server log: {line}" for line in server.new_error_lines()]
    in_window = [t for t in turns if window_start <= t["speech_end"] <= deadline]
    latencies = [t["latency_ms"] for t in in_window if t["latency_ms"] is not None]
    # Overhead: after the detector's own end of speech (a fixed property of each recording, see
    # fleet.detector_offset_ms), minus the silence window and the fakes' latencies.
    overheads = [
        round(t["latency_ms"] - t["detector_offset_ms"] - floor_ms, 1) for t in in_window if t["latency_ms"] is not None
    ]

    def hist(name: str) -> Histogram | None:
        h = after.get(name) if after else None
        earlier = before.get(name) if before else None
        return h.minus(earlier if isinstance(earlier, Histogram) else None) if isinstance(h, Histogram) else None

    by_utterance: dict[str, dict] = {}
    for label in sorted({t["label"] for t in in_window}):
        mine = [
            t["latency_ms"] - t["detector_offset_ms"] - floor_ms
            for t in in_window
            if t["label"] == label and t["latency_ms"] is not None
        ]
        by_utterance[label] = pct(mine, 50, 95)
    lateness, lag = hist("voxline_outbound_frame_lateness_seconds"), hist("voxline_event_loop_lag_seconds")
    gc_pause = hist("voxline_gc_pause_seconds")
    cpu_used = cpu_after - cpu_before
    step = Step(
        calls=calls,
        window_s=window,
        turns=len(in_window),
        v2v_ms=pct(latencies, 50, 95, 99),
        overhead_ms=pct(overheads, 50, 95, 99),
        server_overhead_ms=pct(
            [v - (floor_ms if server_floor_ms is None else server_floor_ms) for v in server_first_frame], 50, 95, 99
        ),
        frame_lateness_ms={
            "p50": _ms(lateness.quantile(0.5)) if lateness else None,
            "p99": _ms(lateness.quantile(0.99)) if lateness else None,
            "n": lateness.n if lateness else 0,
        },
        late_frames_fraction=round(lateness.fraction_above(0.02) or 0.0, 5) if lateness and lateness.n else None,
        loop_lag_ms={"p50": _ms(lag.quantile(0.5)) if lag else None, "p99": _ms(lag.quantile(0.99)) if lag else None},
        cpu_s_per_call_minute=round(cpu_used / (calls * window / 60), 3) if calls else None,
        server_cpu_fraction=round(cpu_used / window, 3),
        rss_idle_mb=round(rss_idle / 2**20, 1),
        rss_peak_mb=round(rss_peak / 2**20, 1),
        memory_per_call_mb=round((rss_peak - rss_idle) / 2**20 / calls, 3) if calls else None,
        fds_peak=fds_peak,
        calls_completed=completed,
        unanswered=unanswered,
        lost_turns=lost,
        errors=errors,
        simulator=sim,
        load_before=load_before,
        cpu_pressure=None
        if pressure_before is None or pressure_after is None
        else round((pressure_after - pressure_before) / (window * 1e6), 3),
        overheads=overheads,
        latencies=latencies,
        gc_pauses={}
        if not gc_pause
        else {
            "passes": int(gc_pause.n),
            "ms_per_s": round(gc_pause.total * 1000 / window, 2),
            "p99_ms": _ms(gc_pause.quantile(0.99)),
        },
        overhead_by_utterance_ms=by_utterance,
        samples=samples,
    )
    return step


def judge(step: Step, limits: Limits) -> None:
    reasons: list[str] = []
    if step.simulator["loop_lag_p99_ms"] > limits.sim_lag_p99_ms:
        step.valid = False
        reasons.append(f"simulator overloaded (its loop lag p99 {step.simulator['loop_lag_p99_ms']} ms)")
    if not step.turns:
        reasons.append("no turn answered in the window")
    if limits.overhead_p95_ms is not None and (
        step.overhead_ms["p95"] is None or step.overhead_ms["p95"] > limits.overhead_p95_ms
    ):
        reasons.append(f"overhead p95 {step.overhead_ms['p95']} ms > {limits.overhead_p95_ms:g}")
    if limits.v2v_p95_ms is not None and (step.v2v_ms["p95"] is None or step.v2v_ms["p95"] > limits.v2v_p95_ms):
        reasons.append(f"voice-to-voice p95 {step.v2v_ms['p95']} ms > {limits.v2v_p95_ms:g}")
    lateness = step.frame_lateness_ms["p99"]
    if lateness is not None and lateness > limits.frame_lateness_p99_ms:
        reasons.append(f"frame lateness p99 {lateness} ms > {limits.frame_lateness_p99_ms:g}")
    if step.errors or step.lost_turns or step.unanswered:
        reasons.append(f"{len(step.errors)} errors, {step.lost_turns} lost turns, {step.unanswered} unanswered")
    step.passed = not reasons
    step.verdict = "pass" if step.passed else "; ".join(reasons)


def _agent() -> AgentConfig:
    from voxline.config import Settings, effective_agent

    return effective_agent(load_agent(Settings().agent_file), Settings())


def server_floor_for(latencies: FakeLatencies | None) -> float:
    """The floor as the server sees it: without the recorded reply's quiet onset (heard, not sent)."""
    from voxline.benchmarks.fakes import reply_onset_ms

    return floor_for(latencies) - (reply_onset_ms() if latencies is not None else 0.0)


def floor_for(latencies: FakeLatencies | None) -> float:
    """The fixed part of voice-to-voice latency: silence window (+ fakes' latencies when fakes are used)."""
    agent = _agent()
    silence = agent.vad.end_silence_frames * 20.0
    if latencies is None:
        return silence
    lead = (agent.vad.end_silence_frames - agent.vad.early_stt_frames) * 20.0 if agent.vad.early_stt_frames else 0.0
    return fixed_floor_ms(latencies, agent.llm.first_piece_max_words, silence, lead)


@dataclass
class RunSettings:
    ladder: list[int]
    limits: Limits
    step: StepConfig
    latencies: FakeLatencies | None  # None: the embedded models
    server_cpus: str | None
    log_path: Path
    server_env: dict[str, str] = field(default_factory=dict)
    stop_on_fail: bool = True


def run_ladder(run: RunSettings, echo) -> dict:
    """Steps N up the ladder until one fails; returns the full result."""
    server_cpus, client_cpus = split_cpus(run.server_cpus)
    os.sched_setaffinity(0, client_cpus)
    floor = floor_for(run.latencies)
    echo(
        f"server CPUs {sorted(server_cpus)}, simulators/fakes CPUs {sorted(client_cpus)}; "
        f"fixed latency floor {floor:.0f} ms; machine busy {busy_cpus():.2f} CPUs before start, "
        f"load average {load_average()[0]:.2f}"
    )
    steps: list[Step] = []
    fakes = FakeProviders(run.latencies, client_cpus) if run.latencies else None
    try:
        env = dict(run.server_env)
        if fakes:
            fakes.__enter__()
            env.update(fakes.server_env())
        with BenchServer(env, server_cpus, run.log_path) as server:
            time.sleep(1.0)
            rss_idle = rss_bytes(server.pid)
            failed_in_a_row = 0
            for calls in run.ladder:
                echo(f"step: {calls} concurrent calls for {run.step.step_s:.0f} s …")
                step = run_step(
                    server,
                    calls,
                    run.step,
                    floor,
                    client_cpus,
                    rss_idle,
                    server_floor_ms=server_floor_for(run.latencies),
                )
                judge(step, run.limits)
                steps.append(step)
                echo(
                    f"  {calls} calls: overhead p95 {step.overhead_ms['p95']} ms, v2v p95 {step.v2v_ms['p95']} ms, "
                    f"frame lateness p99 {step.frame_lateness_ms['p99']} ms, "
                    f"loop lag p99 {step.loop_lag_ms['p99']} ms, "
                    f"server CPU {step.server_cpu_fraction:.2f}, {len(step.errors)} errors → {step.verdict}"
                )
                failed_in_a_row = 0 if step.passed else failed_in_a_row + 1
                # One failed step may be a disturbance (other work on the machine); two in a row is the limit.
                if not step.valid or (run.stop_on_fail and failed_in_a_row >= 2):
                    break
    finally:
        if fakes:
            fakes.__exit__(None, None, None)
    passing = [s.calls for s in steps if s.passed]
    best = max(passing) if passing else 0
    limited_by = next(
        (f"{s.calls} calls: {s.verdict}" for s in steps if not s.passed and s.calls > best),
        "the last step of the ladder passed",
    )
    return {
        "server_cpus": sorted(server_cpus),
        "client_cpus": sorted(client_cpus),
        "floor_ms": round(floor, 1),
        "fake_latencies_ms": asdict(run.latencies) if run.latencies else None,
        "end_silence_ms": _agent().vad.end_silence_frames * 20,
        "limits": asdict(run.limits),
        "step_config": asdict(run.step),
        "max_calls": best,
        "calls_per_core": round(best / len(server_cpus), 1),
        "limited_by": limited_by,
        "load_after": [round(x, 2) for x in load_average()],
        "steps": [asdict(s) for s in steps],
    }
