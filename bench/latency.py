"""Voice-to-voice latency on the embedded models: 20 simulated turns of real human speech.

Voice-to-voice latency is what a caller feels: from the caller's last speech frame to the first
audible frame of the reply coming out of Twilio's playback buffer (modelled by the simulator).
The server runs in its own process; each turn's stage times come from its call records.

    .venv/bin/python bench/latency.py [--calls 4] [--label NAME] [--env VOXLINE_WHISPER_WINDOW=full]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from common import ServerProcess, percentiles, write_result
from voxline.benchmarks.report import plot_distributions
from voxline.session.timeline import STAGES
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
STAGE_ORDER = ("turn_detected", *STAGES)


async def run_calls(server: ServerProcess, calls: int) -> list[dict]:
    utterances = sorted(LIBRIVOX.glob("*.wav"))
    if not utterances:
        raise SystemExit(f"no speech in {LIBRIVOX}: run scripts/install-test-data.sh")
    rows: list[dict] = []
    for index in range(calls):
        rotated = utterances[index % len(utterances) :] + utterances[: index % len(utterances)]
        turns = [CallerTurn(p.stem.rsplit("-", 1)[1], speech_from_wav(p)) for p in rotated]
        result = await SimulatedCall(server.url, server.auth_token).run(turns)
        record = await asyncio.to_thread(server.call_record, result.call_sid)
        by_index = {t["index"]: t for t in record["turns"]}
        for number, heard in enumerate(result.turns, start=1):
            turn = by_index.get(number, {})
            rows.append(
                {
                    "call": index + 1,
                    "turn": number,
                    "utterance": heard.label,
                    "latency_ms": None if heard.latency_s is None else round(heard.latency_s * 1000, 1),
                    "stages_ms": turn.get("stages_ms", {}),
                    "stt_early": turn.get("stt_early"),
                    "caller_text": turn.get("caller_text"),
                    "agent_text": turn.get("agent_text"),
                }
            )
            latency = rows[-1]["latency_ms"]
            print(f"call {index + 1} turn {number} ({heard.label}): {latency} ms  {turn.get('caller_text')!r}")
    return rows


def summarize(rows: list[dict]) -> dict:
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    stages = {
        s: percentiles([r["stages_ms"][s] for r in rows if r["stages_ms"].get(s) is not None]) for s in STAGE_ORDER
    }
    return {
        "voice_to_voice_ms": percentiles(latencies),
        "stages_ms": stages,
        "unanswered": sum(r["latency_ms"] is None for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4, help="calls of 5 turns each (default 4 = 20 turns)")
    parser.add_argument("--label", default="latency", help="result file name under bench/results/")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server, repeatable")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with ServerProcess(env) as server:
        rows = asyncio.run(run_calls(server, args.calls))
    summary = summarize(rows)
    v2v = summary["voice_to_voice_ms"]
    print(f"\nvoice-to-voice latency over {v2v['n']} turns: p50 {v2v['p50']} ms, p95 {v2v['p95']} ms")
    print("stage (ms after the caller's last voiced frame)      p50      p95")
    for stage, stats in summary["stages_ms"].items():
        print(f"  {stage:<48} {stats['p50']!s:>7}  {stats['p95']!s:>7}")
    path = write_result(args.label, {"server_env": env, "summary": summary, "turns": rows})
    plot = plot_distributions(
        path.with_suffix(".png"),
        "Voice-to-voice latency (caller's view) and server stages",
        {
            "voice-to-voice (heard)": [r["latency_ms"] for r in rows if r["latency_ms"] is not None],
            **{
                stage: [r["stages_ms"][stage] for r in rows if r["stages_ms"].get(stage) is not None]
                for stage in ("stt_final", "llm_first_token", "first_frame_sent")
            },
        },
        "ms after the caller's end of speech",
        limit=1200,
    )
    print(f"wrote {plot}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
