"""``voxline bench micro``: the cost of each per-frame step of the hot path, in µs per 20 ms frame.

A call sends 50 inbound frames a second and receives up to 50 outbound ones, so a step that
costs x µs per frame uses x/200 % of a core per call (both directions: twice that). Timings are
the best of ``repeat`` runs (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import base64
import json
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from voxline.audio import mulaw
from voxline.audio.pcm import FRAME_SAMPLES, resample
from voxline.benchmarks.fleet import caller_utterances
from voxline.config import VadSettings
from voxline.simulator.voices import speech_from_wav
from voxline.telephony import messages as m
from voxline.turns.detector import TurnDetector
from voxline.turns.vad import SileroVad, WebRtcVad

STREAM_SID = "MZ" + "0" * 32


def _speech_frames() -> list[bytes]:
    audio = np.concatenate([speech_from_wav(path) for _, path in caller_utterances()])
    ulaw = mulaw.encode(audio)
    return [ulaw[i : i + FRAME_SAMPLES] for i in range(0, len(ulaw) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]


def _media_json(frames: list[bytes]) -> list[str]:
    return [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 3),
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(20 * i),
                    "payload": base64.b64encode(f).decode("ascii"),
                },
                "streamSid": STREAM_SID,
            },
            separators=(",", ":"),
        )
        for i, f in enumerate(frames)
    ]


class _Cycle:
    """Hands out items of a list round-robin, so every timed call sees a different real frame."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.i = 0

    def __call__(self):
        self.i = (self.i + 1) % len(self.items)
        return self.items[self.i]


def cases() -> dict[str, tuple[Callable[[], object], int]]:
    """name → (function doing ``per_call`` frames of work, per_call)."""
    from voxline.engine import files

    frames = _speech_frames()
    pcm = [mulaw.decode(f) for f in frames]
    texts = _media_json(frames)
    next_frame, next_pcm, next_text = _Cycle(frames), _Cycle(pcm), _Cycle(texts)
    webrtc, silero = WebRtcVad(3), SileroVad(files.verified(files.SILERO_VAD))
    detector = TurnDetector(WebRtcVad(3), VadSettings())
    second_8k = np.concatenate(pcm[:50])
    second_24k = resample(second_8k, 8000, 24000)

    def inbound_path() -> None:
        message = m.parse(next_text())
        detector.process(mulaw.decode(message.payload))  # type: ignore[union-attr]  # always media here

    def json_parse() -> m.Media:  # the previous implementation, kept here as the reference
        data = json.loads(next_text())
        media = data["media"]
        return m.Media(
            data["streamSid"],
            str(media.get("track", "inbound")),
            int(media.get("chunk", 0)),
            int(media.get("timestamp", 0)),
            base64.b64decode(media["payload"], validate=True),
        )

    def json_serialize() -> str:
        return json.dumps(
            {
                "event": "media",
                "streamSid": STREAM_SID,
                "media": {"payload": base64.b64encode(next_frame()).decode("ascii")},
            },
            separators=(",", ":"),
        )

    return {
        "μ-law decode (160 bytes → int16)": (lambda: mulaw.decode(next_frame()), 1),
        "  reference: numpy lookup table": (lambda: mulaw._table_decode(next_frame()), 1),
        "μ-law encode (160 samples → bytes)": (lambda: mulaw.encode(next_pcm()), 1),
        "  reference: numpy lookup table ": (lambda: mulaw._table_encode(next_pcm()), 1),
        "WebRTC VAD": (lambda: webrtc.is_speech(next_pcm()), 1),
        "Silero VAD": (lambda: silero.is_speech(next_pcm()), 1),
        "parse a media message (JSON + base64)": (lambda: m.parse(next_text()), 1),
        "  reference: json + base64.b64decode(validate=True)": (json_parse, 1),
        "serialize a media message": (lambda: m.media_message(STREAM_SID, next_frame()), 1),
        "  reference: json.dumps": (json_serialize, 1),
        "turn detector + WebRTC VAD": (lambda: detector.process(next_pcm()), 1),
        "inbound path: parse → μ-law → VAD → turn detector": (inbound_path, 1),
        "resample 24 kHz → 8 kHz (hosted TTS), per 20 ms": (lambda: resample(second_24k, 24000, 8000), 50),
        "resample 8 kHz → 16 kHz (Whisper input), per 20 ms": (lambda: resample(second_8k, 8000, 16000), 50),
    }


def run_micro(repeat: int, label: str, out: Path, console: Console) -> dict:
    from voxline.benchmarks.micro_socket import websocket_receive_costs
    from voxline.benchmarks.report import plot_bars, write_json
    from voxline.benchmarks.system import busy_cpus

    busy = busy_cpus()
    results: dict[str, dict] = {}
    for name, (fn, per_call) in cases().items():
        number = 2000 if per_call == 1 else 50
        fn()  # warm up
        best = min(timeit.repeat(fn, number=number, repeat=repeat)) / number / per_call
        results[name] = {"us_per_frame": round(best * 1e6, 2), "percent_of_core_per_call": round(best * 50 * 100, 3)}
    for name, us in websocket_receive_costs(_media_json(_speech_frames()), repeat).items():
        results[name] = {"us_per_frame": round(us, 2), "percent_of_core_per_call": round(us * 50 / 1e4, 3)}
    table = Table(title=f"per-frame cost (best of {repeat})")
    table.add_column("step")
    table.add_column("µs / frame", justify="right")
    table.add_column("% of a core per call (50 frames/s)", justify="right")
    for name, r in results.items():
        table.add_row(name, f"{r['us_per_frame']:.2f}", f"{r['percent_of_core_per_call']:.3f}")
    console.print(table)
    path = write_json(label, {"busy_cpus_before": round(busy, 2), "results": results}, out)
    plot = plot_bars(
        out / f"{label}.png",
        f"Per-frame cost (best of {repeat})",
        {name: r["us_per_frame"] for name, r in results.items()},
        "µs per 20 ms frame",
    )
    console.print(f"machine busy {busy:.2f} CPUs before the run; wrote {path} and {plot}")
    return results
