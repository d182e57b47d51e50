"""A/B: the same real-speech turns through the recording path and the streaming path.

Both paths run on one server process with the same models and agent. Voice-to-voice latency has
one definition for both: the caller's last speech frame to the first audible reply frame. The
recording path's breakdown: silence timeout (Twilio's <Record timeout>) + fetching the recording
+ STT + the whole LLM reply + TTS of the whole reply + Twilio fetching the <Play> audio. The
streaming path's: VAD end of turn + STT + LLM first token + first clause synthesized.

Twilio's own upload of the recording is instant here (the simulator serves it on loopback); on
the real network it adds to the recording path, so the ratio below is a favourable case for it.

    .venv/bin/python bench/ab.py [--calls 4]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from common import ServerProcess, percentiles, write_result
from latency import run_calls, summarize
from voxline.benchmarks.report import plot_distributions
from voxline.simulator.caller import CallerTurn
from voxline.simulator.recorded_call import RecordedCall
from voxline.simulator.voices import speech_from_wav

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ACCOUNT_SID = "AC" + "ab" * 16


async def run_recorded(server: ServerProcess, calls: int) -> list[dict]:
    utterances = sorted(LIBRIVOX.glob("*.wav"))
    rows: list[dict] = []
    for index in range(calls):
        rotated = utterances[index % len(utterances) :] + utterances[: index % len(utterances)]
        turns = [CallerTurn(p.stem.rsplit("-", 1)[1], speech_from_wav(p)) for p in rotated]
        result = await RecordedCall(server.url, server.auth_token, ACCOUNT_SID).run(turns)
        record = await asyncio.to_thread(server.call_record, result.call_sid)
        for number, (heard, turn) in enumerate(zip(result.turns, record["turns"]), start=1):
            stages = dict(turn["stages_ms"])
            stages["silence_timeout"] = round((heard.action_posted - heard.speech_end) * 1000, 1)
            stages["play_fetch"] = (
                None
                if heard.reply_audible_at is None
                else round((heard.reply_audible_at - heard.twiml_received) * 1000, 1)
            )
            latency = None if heard.latency_s is None else round(heard.latency_s * 1000, 1)
            rows.append(
                {
                    "call": index + 1,
                    "turn": number,
                    "utterance": heard.label,
                    "latency_ms": latency,
                    "stages_ms": stages,
                    "caller_text": turn["caller_text"],
                    "agent_text": turn["agent_text"],
                }
            )
            print(f"recording call {index + 1} turn {number} ({heard.label}): {latency} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4, help="calls of 5 turns each, per path")
    args = parser.parse_args()
    # the simulator serves its recordings on loopback, where Twilio's API would be
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOXLINE_RECORDING_URL_PREFIXES": "http://127.0.0.1:"}
    with ServerProcess(env) as server:
        streaming = asyncio.run(run_calls(server, args.calls))
        recording = asyncio.run(run_recorded(server, args.calls))
    stream_summary = summarize(streaming)
    record_stages = {
        s: percentiles([r["stages_ms"][s] for r in recording if r["stages_ms"].get(s) is not None])
        for s in ("silence_timeout", "fetch", "stt", "llm", "tts", "play_fetch", "total")
    }
    record_v2v = percentiles([r["latency_ms"] for r in recording if r["latency_ms"] is not None])
    stream_v2v = stream_summary["voice_to_voice_ms"]
    ratio = round(stream_v2v["p50"] / record_v2v["p50"], 3) if record_v2v["p50"] else None

    s = stream_summary["stages_ms"]
    left = [
        ("silence timeout", record_stages["silence_timeout"]),
        ("fetch recording", record_stages["fetch"]),
        ("STT", record_stages["stt"]),
        ("LLM (whole reply)", record_stages["llm"]),
        ("TTS (whole reply)", record_stages["tts"]),
        ("Twilio fetches <Play>", record_stages["play_fetch"]),
    ]
    right = [
        ("VAD end of turn", s["turn_detected"]),
        ("STT final", s["stt_final"]),
        ("LLM first token", s["llm_first_token"]),
        ("TTS first audio", s["first_audio"]),
        ("first frame sent", s["first_frame_sent"]),
        ("", None),
    ]
    print(f"\n{'recording path (ms, p50 of each stage)':<44}{'streaming path (ms after end of speech, p50)':<44}")
    for (ln, lv), (rn, rv) in zip(left, right):
        print(f"  {ln:<28}{lv['p50']!s:>10}      {rn:<28}{'' if rv is None else rv['p50']!s:>10}")
    print(
        f"  {'voice-to-voice p50 / p95':<28}{record_v2v['p50']!s:>10} / {record_v2v['p95']!s:<7}"
        f"{'voice-to-voice p50 / p95':<26}{stream_v2v['p50']!s:>10} / {stream_v2v['p95']!s}"
    )
    print(f"\nstreaming p50 / recording p50 = {ratio} (expectation: <= 0.5)")
    path = write_result(
        "ab",
        {
            "ratio_p50": ratio,
            "recording": {"voice_to_voice_ms": record_v2v, "stages_ms": record_stages, "turns": recording},
            "streaming": {**stream_summary, "turns": streaming},
        },
    )
    plot = plot_distributions(
        path.with_suffix(".png"),
        "Voice-to-voice latency: recording path vs streaming",
        {
            "recording": [r["latency_ms"] for r in recording if r["latency_ms"] is not None],
            "streaming": [r["latency_ms"] for r in streaming if r["latency_ms"] is not None],
        },
        "ms from the caller's end of speech to the reply heard",
    )
    print(f"wrote {path} and {plot}")


if __name__ == "__main__":
    main()
