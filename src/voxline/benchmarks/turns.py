"""``voxline bench turns``: turn-taking on phone audio, measured as a caller hears it.

Every case of the labelled set (``turn_corpus``) is a Twilio call through the simulator against
``voxline serve`` on the embedded models. The agent greets with a long sentence; cases that
happen while the agent talks (barge-in, echo, backchannel, false interruption) are spoken over
that greeting, so every such case hears the same agent audio. Cases that happen while the agent
is quiet (pauses, complete turns, noise) are spoken after it, a few to a call.

Per family it reports, from what the simulated caller heard (its model of Twilio's playback
buffer) and from the server's call record:
- pauses / complete: cut-offs (agent audio heard before the caller finished), voice-to-voice
  latency from the caller's last word, and turns answered more than once;
- noise: turns started (any agent audio in answer to noise alone);
- barge-in: time from the caller's first word to the ``clear``, misses;
- echo: false barge-ins (any ``clear`` with the caller silent);
- backchannel: how often the agent stopped for good (it did not resume), how often it paused;
- false interruption: resumes, time from the end of the sound to the agent's audio again, and
  audio heard twice.
Both parts of the set are reported; thresholds are tuned on ``tune`` only.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import httpx
import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE
from voxline.benchmarks.harness import BenchServer
from voxline.benchmarks.turn_corpus import TurnCase, build_cases, material_summary, subset
from voxline.simulator.caller import CallerTurn, CallResult, EchoPath, SimulatedCall

# The agent says this first: long enough (about 8 s) to talk over it at any offset of the set.
LONG_GREETING = (
    "Thank you for calling Sunrise Dental, this is the front desk. We are open Monday to Friday from "
    "nine to six, and on Saturday from ten to two. How can I help you today?"
)
QUIET_CASES_PER_CALL = 3
LINE_NOISE_DBFS = -60.0  # the line is never digitally silent between the caller's sounds
FAMILIES = ("pauses", "complete", "noise", "barge-in", "echo", "backchannel", "false-interruption")
SPLITS = ("tune", "held-out")


@dataclass
class CaseResult:
    id: str
    family: str
    split: str
    synthetic: bool
    call_sid: str = ""
    cut_off: bool | None = None  # agent audio heard while the caller was still speaking
    latency_ms: float | None = None  # caller's last word → first audible reply
    answers: int | None = None  # answer turns the server recorded for this case
    false_turn: bool | None = None  # the agent answered noise
    clear_ms: float | None = None  # caller's first sound → clear
    cleared: bool | None = None
    stopped: bool | None = None  # the agent's utterance was given up (a barge-in)
    resumed: bool | None = None
    resume_ms: float | None = None  # end of the caller's sound → agent audible again
    repeated_ms: float | None = None  # agent audio heard more than once (ms beyond the full greeting)
    events: list[str] = field(default_factory=list)


def bench_agent_file(folder: Path) -> Path:
    """The packaged front desk with the long greeting."""
    text = resources.files("voxline.agents").joinpath("front_desk.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^greeting = ".*"$', f'greeting = "{LONG_GREETING}"', text)
    path = folder / "turn-bench-agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _played_s(call: CallResult) -> float:
    return sum(item.pcm.size for item in call.playback.played) / TELEPHONY_RATE


async def _record(server: BenchServer, call_sid: str) -> dict:
    headers = {"Authorization": f"Bearer {server.api_token}"}
    async with httpx.AsyncClient(timeout=5) as client:
        record: dict = {}
        for _ in range(100):
            record = (await client.get(f"{server.url}/api/calls/{call_sid}", headers=headers)).json()
            if record.get("ended_at"):
                break
            await asyncio.sleep(0.1)
    return record


def _span(case: TurnCase) -> tuple[float, float]:
    """Seconds into the case's audio of its first and last sound (speech, or the whole clip)."""
    if case.speech:
        return case.speech[0][0], case.speech[-1][1]
    return 0.0, case.caller.size / TELEPHONY_RATE


async def _quiet_call(server: BenchServer, cases: list[TurnCase]) -> list[CaseResult]:
    """Cases spoken while the agent is quiet, one after the other in one call."""
    noise = cases[0].family == "noise"
    sim = SimulatedCall(
        server.url,
        server.auth_token,
        quiet_s=1.0,
        reply_timeout_s=3.5 if noise else 20.0,
        greeting_timeout_s=20.0,
        line_noise_dbfs=LINE_NOISE_DBFS,
    )
    turns = [CallerTurn(case.id, case.caller) for case in cases]
    call = await sim.run(turns)
    record = await _record(server, call.call_sid)
    answers = [t for t in record.get("turns", []) if t.get("kind") == "answer"]
    results = []
    for index, (case, heard) in enumerate(zip(cases, call.turns)):
        result = CaseResult(case.id, case.family, case.split, case.synthetic, call.call_sid)
        first, last = _span(case)
        spoke_from, spoke_until = heard.speech_start + first, heard.speech_start + last
        window_end = call.turns[index + 1].speech_start if index + 1 < len(call.turns) else float("inf")
        early = call.playback.first_audible_after(spoke_from)
        reply = call.playback.first_audible_after(spoke_until)
        if noise:
            result.false_turn = bool(reply is not None and reply < window_end)
        else:
            result.cut_off = bool(early is not None and early < spoke_until - 0.02)
            if reply is not None and reply < window_end:
                result.latency_ms = round(float(reply - spoke_until) * 1000, 1)
            until = min(window_end, spoke_until + 10)
            result.answers = sum(1 for t in answers if t.get("caller_text") and spoke_from - 1.0 <= _when(t) <= until)
        results.append(result)
    return results


def _when(turn: dict) -> float:
    """A recorded turn's end of speech (epoch seconds, from the server) on the simulator's clock."""
    return float(turn.get("started_at") or 0.0) - (time.time() - time.monotonic())


async def _overlap_call(server: BenchServer, case: TurnCase, greeting_s: float) -> CaseResult:
    """One case spoken over the greeting, with the agent's echo if the case has one."""
    echo = EchoPath(case.echo_gain_db, case.echo_delay_ms) if case.echo_gain_db is not None else None
    sim = SimulatedCall(
        server.url, server.auth_token, quiet_s=1.0, reply_timeout_s=20.0, echo=echo, line_noise_dbfs=LINE_NOISE_DBFS
    )
    turn = CallerTurn(case.id, case.caller, barge_in_after_s=case.offset_s)
    call = await sim.run([turn], linger_s=0.5)
    record = await _record(server, call.call_sid)
    events = [e.get("kind", "") for e in record.get("events", [])]
    result = CaseResult(case.id, case.family, case.split, case.synthetic, call.call_sid, events=events)
    [heard] = call.turns
    first, last = _span(case)
    onset, sound_end = heard.speech_start + first, heard.speech_start + last
    clears = [c for c in call.playback.clears if c >= heard.speech_start - 0.05]
    result.cleared = bool(clears)
    result.clear_ms = round(float(clears[0] - onset) * 1000, 1) if clears else None
    result.stopped = "barge-in" in events
    result.resumed = "backchannel" in events or "false-interruption" in events
    if result.resumed:
        again = call.playback.first_audible_after(max(sound_end, clears[0] if clears else sound_end))
        result.resume_ms = None if again is None else round(float(again - sound_end) * 1000, 1)
        answered = any(t.get("kind") == "answer" for t in record.get("turns", []))
        if not answered:
            result.repeated_ms = round(max(0.0, _played_s(call) - greeting_s) * 1000, 1)
    return result


def summarize(results: list[CaseResult]) -> dict[str, dict[str, dict]]:
    """Per family and split: the numbers the issue's goals are stated in."""
    out: dict[str, dict[str, dict]] = {}
    for family in FAMILIES:
        out[family] = {}
        for split in (*SPLITS, "all"):
            rows = [r for r in results if r.family == family and (split == "all" or r.split == split)]
            if rows:
                out[family][split] = _family_summary(family, rows)
    return out


def _rate(flags: list[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(100 * sum(known) / len(known), 1) if known else None


def _pct(values: list[float | None]) -> dict[str, float | None]:
    known = np.asarray([v for v in values if v is not None], dtype=float)
    if not known.size:
        return {"p50": None, "p95": None, "n": 0}
    return {
        "p50": round(float(np.percentile(known, 50)), 1),
        "p95": round(float(np.percentile(known, 95)), 1),
        "n": int(known.size),
    }


def _family_summary(family: str, rows: list[CaseResult]) -> dict:
    summary: dict[str, object] = {"cases": len(rows)}
    if family in ("pauses", "complete"):
        summary["cut_off_pct"] = _rate([r.cut_off for r in rows])
        summary["latency_ms"] = _pct([r.latency_ms for r in rows])
        summary["unanswered"] = sum(r.latency_ms is None for r in rows)
        summary["answered_twice"] = sum((r.answers or 0) > 1 for r in rows)
    elif family == "noise":
        summary["false_turn_pct"] = _rate([r.false_turn for r in rows])
    elif family == "barge-in":
        summary["clear_ms"] = _pct([r.clear_ms for r in rows])
        summary["missed"] = sum(not r.cleared or not r.stopped for r in rows)
    elif family == "echo":
        summary["false_barge_in_pct"] = _rate([r.cleared for r in rows])
        summary["stopped_pct"] = _rate([r.stopped for r in rows])
    elif family == "backchannel":
        summary["stopped_pct"] = _rate([r.stopped or not r.resumed for r in rows])
        summary["paused_pct"] = _rate([r.cleared for r in rows])
        summary["resume_ms"] = _pct([r.resume_ms for r in rows])
    elif family == "false-interruption":
        summary["resumed_pct"] = _rate([r.resumed for r in rows])
        summary["resume_ms"] = _pct([r.resume_ms for r in rows])
        summary["repeated_ms"] = _pct([r.repeated_ms for r in rows])
    return summary


async def run_cases(server: BenchServer, cases: list[TurnCase], progress=print) -> tuple[list[CaseResult], float]:
    """Plays every case; returns the results and the greeting's length as heard on a silent call."""
    baseline = await SimulatedCall(server.url, server.auth_token, quiet_s=1.0, line_noise_dbfs=LINE_NOISE_DBFS).run(
        [], linger_s=0.5
    )
    greeting_s = _played_s(baseline)
    results: list[CaseResult] = []
    quiet: dict[str, list[TurnCase]] = {}
    for case in cases:
        if case.during_agent:
            result = await _overlap_call(server, case, greeting_s)
            results.append(result)
            progress(_line(result))
        else:
            quiet.setdefault(case.family, []).append(case)
    for family_cases in quiet.values():
        for start in range(0, len(family_cases), QUIET_CASES_PER_CALL):
            for result in await _quiet_call(server, family_cases[start : start + QUIET_CASES_PER_CALL]):
                results.append(result)
                progress(_line(result))
    return results, greeting_s


def _line(result: CaseResult) -> str:
    shown = {
        k: v
        for k, v in asdict(result).items()
        if v is not None and k not in ("id", "family", "split", "synthetic", "call_sid", "events")
    }
    return f"{result.split:8} {result.id:55} {shown}"


def run_benchmark(
    per_family: int, split: str, env: dict[str, str], log_path: Path, progress=print, families: list[str] | None = None
) -> dict:
    cases = build_cases()
    if families:
        cases = [c for c in cases if c.family in families]
    if split != "all":
        cases = [c for c in cases if c.split == split]
    if per_family:
        cases = subset(cases, per_family)
    with tempfile.TemporaryDirectory(prefix="voxline-turns-") as folder:
        agent = bench_agent_file(Path(folder))
        started = time.monotonic()
        cpus = set(os.sched_getaffinity(0))
        with BenchServer({"VOXLINE_AGENT_FILE": str(agent), **env}, cpus, log_path) as server:
            results, greeting_s = asyncio.run(run_cases(server, cases, progress))
    return {
        "cases": len(results),
        "greeting_s": round(greeting_s, 3),
        "seconds": round(time.monotonic() - started, 1),
        "material": material_summary(cases),
        "summary": summarize(results),
        "results": [asdict(r) for r in results],
    }
