"""``voxline bench conversation``: does the agent tell callers the truth?

Scenarios are data (``benchmarks/conversations/*.scenarios.toml``): four businesses Voxline does
not ship (a bike repair shop, a pizzeria, a vet, a hair salon), each an ordinary agent file, and
caller turns with per-turn rules: ``must`` (each a regular expression the reply must match),
``must_not`` (none may match), and per scenario ``stored`` (the task the call must have stored,
with fields matching). Each scenario is one call against ``voxline serve`` on the embedded models:

- ``speech``: the caller's words are spoken by espeak-ng's English voice (not the agent's own
  voice) and placed as a Twilio call through the simulator, so speech-to-text errors count;
- ``text``: the same words typed on the softphone socket (``voxline.text``), answered by the same
  session without the speech-to-text, so answer errors are told apart from hearing errors.

It reports, per mode and part (``tune`` / ``held-out``: never tune on the held-out part), the
share of replies right, by category and by business, and in speech mode the voice-to-voice
latency. All of the callers' speech is synthetic: no recording of these questions exists.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from voxline.benchmarks.harness import BenchServer
from voxline.simulator.caller import CallerTurn, SimulatedCall, ended_call_record

MODES = ("text", "speech")
PARTS = ("tune", "held-out")
CALLER_VOICE = "en-us"  # espeak-ng: a voice the agents here do not use (they speak with hibari)


@dataclass(frozen=True)
class Turn:
    say: str
    must: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    id: str
    business: str
    agent: Path
    part: str
    category: str
    turns: tuple[Turn, ...]
    stored: dict[str, Any] | None = None


@dataclass
class TurnResult:
    scenario: str
    business: str
    part: str
    category: str
    mode: str
    said: str
    heard: str = ""  # what the agent was heard to say it was asked (the STT's transcript)
    reply: str = ""
    right: bool = False
    why: list[str] = field(default_factory=list)
    latency_ms: float | None = None


def scenarios(folder: Path | None = None) -> list[Scenario]:
    root = Path(folder) if folder else Path(str(resources.files("voxline.benchmarks").joinpath("conversations")))
    found = []
    for path in sorted(root.glob("*.scenarios.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        business = path.name.removesuffix(".scenarios.toml")
        for item in data["scenario"]:
            turns = tuple(Turn(t["say"], tuple(t.get("must", ())), tuple(t.get("must_not", ()))) for t in item["turns"])
            found.append(
                Scenario(
                    item["id"],
                    business,
                    path.parent / data["agent"],
                    item["part"],
                    item["category"],
                    turns,
                    item.get("stored"),
                )
            )
    return found


def judge(reply: str, turn: Turn) -> list[str]:
    """Why ``reply`` is wrong (empty: right)."""
    why = [f"missing /{p}/" for p in turn.must if not re.search(p, reply, re.IGNORECASE)]
    why += [f"says /{p}/" for p in turn.must_not if re.search(p, reply, re.IGNORECASE)]
    return why if reply else ["no reply"]


def judge_stored(events: list[dict], stored: dict[str, Any]) -> list[str]:
    tasks = [e.get("details", {}) for e in events if e.get("kind") == "task"]
    mine = [t for t in tasks if t.get("task") == stored["task"]]
    if not mine:
        return [f"no {stored['task']} stored"]
    fields = mine[-1].get("fields", {})
    return [
        f"{name} is {fields.get(name, '')!r}, not /{pattern}/"
        for name, pattern in stored.get("fields", {}).items()
        if not re.search(pattern, str(fields.get(name, "")), re.IGNORECASE)
    ]


class CallerVoice:
    """The callers' voice: espeak-ng's English, 8 kHz, cached per sentence."""

    def __init__(self) -> None:
        from voxline.providers.pool import ModelPool
        from voxline.tts.espeak_tts import EspeakTTS

        self._tts = EspeakTTS(ModelPool(1), voice=CALLER_VOICE)
        self._cache: dict[str, np.ndarray] = {}

    def speak(self, text: str) -> np.ndarray:
        from voxline.audio import mulaw

        if text not in self._cache:
            self._cache[text] = mulaw.decode(self._tts.synthesize_blocking(text))
        return self._cache[text]


async def run_scenario(
    server: BenchServer, scenario: Scenario, mode: str, voice: CallerVoice | None
) -> list[TurnResult]:
    if mode == "text":
        call = SimulatedCall(server.url, softphone_token=server.api_token, reply_timeout_s=60)
        turns = [CallerTurn(t.say[:40], np.zeros(0, np.int16), text=t.say) for t in scenario.turns]
    else:
        assert voice is not None
        call = SimulatedCall(server.url, server.auth_token, reply_timeout_s=60)
        turns = [CallerTurn(t.say[:40], voice.speak(t.say)) for t in scenario.turns]
    result = await call.run(turns)
    record = await ended_call_record(server.url, server.api_token, result.call_sid)
    if record is None or record.get("outcome") == "in-progress":
        raise TimeoutError(f"call {result.call_sid} did not end")
    answers = [t for t in record["turns"] if t.get("kind") == "answer"]
    out = []
    for index, turn in enumerate(scenario.turns):
        answered = answers[index] if index < len(answers) else {}
        reply = answered.get("agent_text", "")
        why = judge(reply, turn)
        if index == len(scenario.turns) - 1 and scenario.stored:
            why += judge_stored(record.get("events", []), scenario.stored)
        latency = result.turns[index].latency_s if index < len(result.turns) else None
        out.append(
            TurnResult(
                scenario.id,
                scenario.business,
                scenario.part,
                scenario.category,
                mode,
                turn.say,
                heard=answered.get("caller_text", ""),
                reply=reply,
                right=not why,
                why=why,
                latency_ms=None if latency is None or mode == "text" else round(latency * 1000, 1),
            )
        )
    return out


def _share(rows: list[TurnResult]) -> dict[str, Any]:
    return {
        "turns": len(rows),
        "right": sum(r.right for r in rows),
        "share": round(sum(r.right for r in rows) / len(rows), 3) if rows else None,
    }


def summarize(results: list[TurnResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode in MODES:
        for part in PARTS:
            rows = [r for r in results if r.mode == mode and r.part == part]
            if not rows:
                continue
            latencies = sorted(r.latency_ms for r in rows if r.latency_ms is not None)
            summary.setdefault(mode, {})[part] = {
                **_share(rows),
                "by_category": {
                    c: _share([r for r in rows if r.category == c]) for c in sorted({r.category for r in rows})
                },
                "by_business": {
                    b: _share([r for r in rows if r.business == b]) for b in sorted({r.business for r in rows})
                },
                "v2v_p50_ms": statistics.median(latencies) if latencies else None,
                "v2v_p95_ms": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
                if latencies
                else None,
            }
    return summary


def run_benchmark(modes: list[str], part: str, log_dir: Path, progress=print, only: list[str] | None = None) -> dict:
    chosen = [s for s in scenarios() if (part == "all" or s.part == part) and (not only or s.business in only)]
    voice = CallerVoice() if "speech" in modes else None
    results: list[TurnResult] = []
    started = time.monotonic()
    cpus = set(os.sched_getaffinity(0))
    for business in sorted({s.business for s in chosen}):
        mine = [s for s in chosen if s.business == business]
        env = {"VOXLINE_AGENT_FILE": str(mine[0].agent)}
        with BenchServer(env, cpus, log_dir / f"conversation-{business}-server.log") as server:
            for mode in modes:
                for scenario in mine:
                    rows = asyncio.run(run_scenario(server, scenario, mode, voice))
                    results += rows
                    for row in rows:
                        mark = "ok " if row.right else "BAD"
                        progress(
                            f"{mark} {mode:6} {row.part:8} {row.scenario:24} {row.said[:50]!r} -> {row.reply[:90]!r}"
                        )
    return {
        "seconds": round(time.monotonic() - started, 1),
        "modes": modes,
        "part": part,
        "caller_voice": f"espeak-ng {CALLER_VOICE} (synthetic)",
        "summary": summarize(results),
        "results": [asdict(r) for r in results],
    }
