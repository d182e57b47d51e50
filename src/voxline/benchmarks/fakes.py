"""The hosted providers as local fakes with fixed, configurable latencies, in a process of their own.

STT and LLM speak OpenAI's API, TTS speaks ElevenLabs' (μ-law 8 kHz, as the real one is asked
for). Each answer waits a fixed time first (the LLM: before its first token, then a fixed time per
token), so a measured latency minus these constants is what Voxline itself added.

    python -m voxline.benchmarks.fakes --stt-ms 150 --llm-ttft-ms 200 --tts-ms 150

prints one JSON line with the base URLs once both servers listen, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from starlette.requests import Request

from voxline.fakes.elevenlabs_server import FakeElevenLabs
from voxline.fakes.openai_server import FakeOpenAI
from voxline.llm.chunking import ClauseChunker

REPLY = "We are open from nine to six on weekdays, and from ten to two on Saturday."
# What the fake TTS says for every piece: a real recorded prompt (about 1.3 s).
REPLY_SPEECH = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-goodbye.wav")


@dataclass(frozen=True)
class FakeLatencies:
    stt_ms: float = 150.0
    llm_ttft_ms: float = 200.0
    llm_token_ms: float = 0.0
    tts_ms: float = 150.0


def words(text: str) -> list[str]:
    """The tokens the fake LLM streams: one per word, as the real API's deltas roughly are."""
    parts = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(parts)]


def first_piece_tokens(text: str, first_max_words: int, first_min_words: int = 1) -> int:
    """How many streamed tokens the session needs before it can speak the first piece."""
    chunker = ClauseChunker(first_min_words=first_min_words, first_max_words=first_max_words)
    for index, token in enumerate(words(text), start=1):
        if chunker.push(token):
            return index
    return len(words(text))


def reply_onset_ms() -> float:
    """How far into the fake TTS's speech its first audible 20 ms frame is (the recording's own
    quiet onset, as the caller's playback model measures it)."""
    from voxline.audio import mulaw
    from voxline.simulator.recorded_call import first_audible_offset
    from voxline.simulator.voices import speech_from_wav

    offset = first_audible_offset(mulaw.decode(mulaw.encode(speech_from_wav(REPLY_SPEECH))))
    return 0.0 if offset is None else offset * 1000


def fixed_floor_ms(
    latencies: FakeLatencies, first_max_words: int, end_silence_ms: float, early_stt_lead_ms: float, reply: str = REPLY
) -> float:
    """The part of voice-to-voice latency that is not Voxline's: the end-of-turn silence, the STT
    time not hidden by early transcription, time to the LLM's first piece, TTS, and the quiet
    onset of the fake's recorded reply."""
    tokens = first_piece_tokens(reply, first_max_words)
    return (
        end_silence_ms
        + max(0.0, latencies.stt_ms - early_stt_lead_ms)
        + latencies.llm_ttft_ms
        + (tokens - 1) * latencies.llm_token_ms
        + latencies.tts_ms
        + reply_onset_ms()
    )


class TimedOpenAI(FakeOpenAI):
    """The OpenAI fake with fixed latencies; it keeps no request log (a soak would fill memory)."""

    def __init__(self, latencies: FakeLatencies) -> None:
        super().__init__(reply=REPLY)
        self.latencies = latencies
        self.served = 0

    async def _transcriptions(self, request: Request):
        await asyncio.sleep(self.latencies.stt_ms / 1000)
        response = await super()._transcriptions(request)
        self.requests.clear()
        self.served += 1
        return response

    async def _completions(self, request: Request):
        response = await super()._completions(request)
        self.requests.clear()
        self.served += 1
        return response

    async def _chunks(self, body: dict):
        model = body["model"]
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> str:
            return (
                "data: "
                + json.dumps(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
                + "\n\n"
            )

        await asyncio.sleep(self.latencies.llm_ttft_ms / 1000)
        yield chunk({"role": "assistant", "content": ""})
        for index, token in enumerate(words(self.reply)):
            if index and self.latencies.llm_token_ms:
                await asyncio.sleep(self.latencies.llm_token_ms / 1000)
            yield chunk({"content": token})
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"


class TimedElevenLabs(FakeElevenLabs):
    def __init__(self, latencies: FakeLatencies, speech: np.ndarray) -> None:
        super().__init__()
        self.latencies = latencies
        self.speech = speech
        self.served = 0

    async def _stream(self, request: Request):
        await asyncio.sleep(self.latencies.tts_ms / 1000)
        response = await super()._stream(request)
        self.requests.clear()
        self.served += 1
        return response


async def serve(latencies: FakeLatencies) -> None:
    from voxline.simulator.voices import speech_from_wav

    speech = speech_from_wav(REPLY_SPEECH)
    async with TimedOpenAI(latencies) as openai, TimedElevenLabs(latencies, speech) as elevenlabs:
        print(
            json.dumps(
                {
                    "openai_base_url": openai.base_url,
                    "elevenlabs_base_url": elevenlabs.base_url,
                    "latencies": asdict(latencies),
                    "pid": os.getpid(),
                }
            ),
            flush=True,
        )
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stt-ms", type=float, default=FakeLatencies.stt_ms)
    parser.add_argument("--llm-ttft-ms", type=float, default=FakeLatencies.llm_ttft_ms)
    parser.add_argument("--llm-token-ms", type=float, default=FakeLatencies.llm_token_ms)
    parser.add_argument("--tts-ms", type=float, default=FakeLatencies.tts_ms)
    parser.add_argument("--cpus", default="", help="CPU list to pin this process to, e.g. '1'")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, parse_cpus(args.cpus))
    import logging

    # A request the server gives up on (an early transcription made moot) is normal here, not news.
    logging.basicConfig(level=logging.CRITICAL)
    import uvloop

    try:
        uvloop.run(serve(FakeLatencies(args.stt_ms, args.llm_ttft_ms, args.llm_token_ms, args.tts_ms)))
    except KeyboardInterrupt:
        sys.exit(0)


def parse_cpus(text: str) -> set[int]:
    """'0', '0,1' or '0-3' → a CPU set."""
    cpus: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-")
            cpus.update(range(int(low), int(high) + 1))
        elif part.strip():
            cpus.add(int(part))
    return cpus


if __name__ == "__main__":
    main()
