"""Simulated callers in a process of their own: ``slots`` calls kept going at once until a deadline.

Each slot places a call, speaks real recorded turns (waiting for each reply), hangs up, reads the
call back from the server's API to check that every turn it spoke was recorded, and places the
next call, until the deadline (a turn in progress is finished first). The process watches its own
event loop: a simulator that sends frames late would measure its own overload, not the server's.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import numpy as np

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# Real human speech, each one sentence without a long pause inside (so it is exactly one turn).
CALLER_UTTERANCES = ("0880", "0930", "0890")


@dataclass
class FleetSpec:
    base_url: str
    auth_token: str
    api_token: str
    slots: int
    start_at: float  # time.monotonic(): the first call is placed then (slots are spread over ramp_s)
    deadline: float  # no new call, and no new turn, after this
    ramp_s: float = 5.0
    turns_per_call: int = 3
    cpus: set[int] = field(default_factory=set)
    seed: int = 0
    check_records: bool = True


def caller_utterances() -> list[tuple[str, Path]]:
    found = {p.stem.rsplit("-", 1)[1]: p for p in LIBRIVOX.glob("*.wav")}
    missing = [u for u in CALLER_UTTERANCES if u not in found]
    if missing:
        raise SystemExit(f"no speech in {LIBRIVOX}: run scripts/install-test-data.sh")
    return [(u, found[u]) for u in CALLER_UTTERANCES]


def detector_offset_ms(audio: np.ndarray) -> float:
    """Where the turn detector puts the end of this utterance, relative to its last frame (ms).

    The caller's "last speech frame" is a level threshold; the server's VAD (with its own hangover)
    may end speech a few frames later or earlier. Replaying the same frames through the same
    detector offline gives that fixed, load-independent difference, so it is not counted as load.
    """
    from voxline.audio import mulaw
    from voxline.audio.pcm import FRAME_SAMPLES
    from voxline.config import Settings, effective_agent, load_agent
    from voxline.engine.stack import vad_factory
    from voxline.turns.detector import SpeechEnded, TurnDetector

    settings = Settings()
    agent = effective_agent(load_agent(settings.agent_file), settings)
    detector = TurnDetector(vad_factory(agent.vad)(), agent.vad)
    ulaw = mulaw.encode(audio)
    frames = [ulaw[i : i + FRAME_SAMPLES].ljust(FRAME_SAMPLES, b"\xff") for i in range(0, len(ulaw), FRAME_SAMPLES)]
    lead = [b"\xff" * FRAME_SAMPLES] * 25
    tail = [b"\xff" * FRAME_SAMPLES] * (agent.vad.end_silence_frames + 25)
    ended: SpeechEnded | None = None
    for frame in lead + frames + tail:
        event = detector.process(mulaw.decode(frame))
        if isinstance(event, SpeechEnded):
            ended = event
    if ended is None:
        return 0.0
    last_frame = len(lead) + len(frames) - 1
    return (ended.last_voiced_frame - last_frame) * 20.0


async def _lag_watch(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked = time.monotonic()
        await asyncio.sleep(0.05)
        samples.append(max(0.0, time.monotonic() - asked - 0.05))


async def _slot(
    index: int, spec: FleetSpec, turns, client: httpx.AsyncClient, session: aiohttp.ClientSession, out: dict
) -> None:
    from voxline.simulator.caller import CallerTurn, SimulatedCall

    rng = random.Random(spec.seed * 100003 + index)
    await asyncio.sleep(max(0.0, spec.start_at + spec.ramp_s * index / max(1, spec.slots) - time.monotonic()))
    while time.monotonic() < spec.deadline:
        chosen = [turns[rng.randrange(len(turns))] for _ in range(spec.turns_per_call)]
        call = SimulatedCall(spec.base_url, spec.auth_token, reply_timeout_s=15.0)
        call.hang_up_at = spec.deadline
        try:
            result = await call.run(
                [CallerTurn(label, audio) for label, audio in chosen], client=client, session=session
            )
        except Exception as exc:  # a refused or broken call is an error of the run, reported, not fatal
            out["errors"].append(f"call {call.call_sid}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)
            continue
        out["calls"] += 1
        out["max_send_lateness_s"] = max(out["max_send_lateness_s"], call.max_send_lateness_s)
        if result.close_code not in (None, 1000, 1005):
            out["errors"].append(f"call {result.call_sid}: closed with {result.close_code}")
        answered = 0
        for turn in result.turns:
            out["turns"].append(
                {
                    "speech_end": turn.speech_end,
                    "latency_ms": None if turn.latency_s is None else round(turn.latency_s * 1000, 1),
                    "label": turn.label,
                    "detector_offset_ms": out["detector_offset_ms"][turn.label],
                }
            )
            answered += turn.latency_s is not None
        out["unanswered"] += len(result.turns) - answered
        if spec.check_records:
            await _check_record(spec, client, result.call_sid, len(result.turns), out)


async def _check_record(spec: FleetSpec, client: httpx.AsyncClient, call_sid: str, spoken: int, out: dict) -> None:
    """Every turn the caller spoke must be in the call record (read back through the API)."""
    headers = {"Authorization": f"Bearer {spec.api_token}"}
    record: dict = {}
    for _ in range(50):
        try:
            response = await client.get(f"{spec.base_url}/api/calls/{call_sid}", headers=headers)
            if response.status_code == 200:
                record = response.json()
                if record.get("ended_at"):
                    break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    recorded = len(record.get("turns", []))
    out["records_checked"] += 1
    if recorded < spoken:
        out["lost_turns"] += spoken - recorded
        out["errors"].append(f"call {call_sid}: {spoken} turns spoken, {recorded} recorded")
    for turn in record.get("turns", []):
        sent = (turn.get("stages_ms") or {}).get("first_frame_sent")
        if sent is not None:
            out["server_first_frame_ms"].append(sent)
    failed = sum(1 for t in record.get("turns", []) if t.get("failed"))
    if failed:
        out["errors"].append(f"call {call_sid}: {failed} turns failed")
    for event in record.get("events", []):
        if event.get("kind") == "error":
            out["errors"].append(f"call {call_sid}: error event {event.get('details')}")


async def run_fleet(spec: FleetSpec) -> dict:
    from voxline.simulator.caller import stream_session
    from voxline.simulator.voices import speech_from_wav

    turns = [(label, speech_from_wav(path)) for label, path in caller_utterances()]
    offsets = {label: detector_offset_ms(audio) for label, audio in turns}
    out: dict = {
        "detector_offset_ms": offsets,
        "calls": 0,
        "turns": [],
        "errors": [],
        "unanswered": 0,
        "lost_turns": 0,
        "records_checked": 0,
        "max_send_lateness_s": 0.0,
        "server_first_frame_ms": [],
    }
    lag: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(_lag_watch(lag, stop))
    limits = httpx.Limits(max_connections=max(10, spec.slots), max_keepalive_connections=max(10, spec.slots))
    cpu0 = time.process_time()
    # one httpx client (webhooks, API) and one aiohttp session (media streams) for all the slots
    async with httpx.AsyncClient(timeout=30, limits=limits) as client, stream_session() as session:
        await asyncio.gather(*(_slot(i, spec, turns, client, session, out) for i in range(spec.slots)))
    stop.set()
    await watcher
    out["cpu_s"] = time.process_time() - cpu0
    out["loop_lag_ms"] = {"p50": _pct(lag, 50), "p99": _pct(lag, 99), "max": _pct(lag, 100)}
    return out


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def fleet_process(spec: FleetSpec, conn) -> None:
    """Entry point of a simulator process (multiprocessing, spawn): runs the fleet, sends back its result."""
    import logging

    import uvloop

    logging.basicConfig(level=logging.ERROR)
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    try:
        conn.send(uvloop.run(run_fleet(spec)))
    except BaseException as exc:  # the parent must hear why, not wait forever
        conn.send({"fatal": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()
