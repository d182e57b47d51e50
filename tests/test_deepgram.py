"""Deepgram's live API against a local server speaking its WebSocket protocol: the stream, its
failures, and sockets parked at webhook time."""

from __future__ import annotations

import asyncio
import time

import pytest

from voxline.audio import mulaw
from voxline.errors import ProviderError
from voxline.fakes.deepgram_server import API_KEY, FakeDeepgram
from voxline.simulator.voices import speech_from_wav
from voxline.stt.deepgram import DeepgramSTT
from voxline.stt.parking import StreamParking

SILENCE = bytes([0xFF]) * 160


@pytest.fixture(scope="module")
def speech(librivox) -> bytes:
    return mulaw.encode(speech_from_wav(librivox["0880"]))


def frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


async def talk(stream, ulaw: bytes, silence_frames: int = 5, pace_s: float = 0.0) -> None:
    """Send like Twilio does: 20 ms frames (faster than real time unless paced)."""
    for frame in [*frames(ulaw), *[SILENCE] * silence_frames]:
        stream.send(frame)
        await asyncio.sleep(pace_s)


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_live_query_the_audio_as_is_and_finalize(speech):
    async with FakeDeepgram() as fake:
        stt = DeepgramSTT(fake.base_url, API_KEY, "nova-3", endpointing_ms=400)
        stream = stt.open("en")
        await wait_for(lambda: stream.connected)
        await talk(stream, speech, silence_frames=5)
        await wait_for(lambda: len(fake.connections[0]["audio"]) == len(speech) + 5 * 160)
        started = time.monotonic()
        text = await stream.finalize()
        finalize_ms = (time.monotonic() - started) * 1000
        await stream.close()
    info = fake.connections[0]
    assert text == fake.transcript
    assert finalize_ms < 100, finalize_ms  # one round trip on loopback
    assert bytes(info["audio"]) == speech + SILENCE * 5  # μ-law exactly as it came: no transcoding
    assert info["query"] == {
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "model": "nova-3",
        "interim_results": "true",
        "endpointing": "400",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "true",
        "language": "en",
    }
    assert info["controls"] == ["Finalize", "CloseStream"]
    kinds = [m["type"] for m in info["sent"]]
    assert kinds[0] == "SpeechStarted" and "Metadata" == kinds[-1]
    finals = [m for m in info["sent"] if m["type"] == "Results" and m["is_final"]]
    assert finals[-1]["from_finalize"] is True
    assert any(m["type"] == "Results" and not m["is_final"] for m in info["sent"])  # interim results came first


async def test_deepgram_endpoint_and_utterance_end_are_reported(speech):
    async with FakeDeepgram() as fake:
        stream = DeepgramSTT(fake.base_url, API_KEY, "nova-3", endpointing_ms=100).open("en")
        ends: list[float] = []
        stream.on_end_of_speech = lambda: ends.append(time.monotonic())
        await talk(stream, speech, silence_frames=10)
        await wait_for(lambda: ends)
        assert stream.transcript() == fake.transcript  # speech_final: the text is already final
        await asyncio.sleep(0.2)
        before = len(ends)  # one per speech_final (a pause inside the utterance makes one too)
        await talk(stream, b"", silence_frames=60)  # 1.2 s more: past utterance_end_ms
        await wait_for(lambda: any(m["type"] == "UtteranceEnd" for m in fake.connections[0]["sent"]))
        await wait_for(lambda: len(ends) == before + 1)
        await stream.close()
    speech_final = next(m for m in fake.connections[0]["sent"] if m.get("speech_final"))
    assert speech_final["is_final"] and speech_final["channel"]["alternatives"][0]["transcript"] == fake.transcript


async def test_keepalive_while_no_audio_is_sent():
    async with FakeDeepgram() as fake:
        stream = DeepgramSTT(fake.base_url, API_KEY, "nova-3", keepalive_s=0.1).open("en")
        await wait_for(lambda: fake.connections and fake.connections[0]["controls"].count("KeepAlive") >= 2)
        await stream.close()


async def test_a_bad_key_fails_at_once_and_is_never_shown(speech):
    async with FakeDeepgram() as fake:
        stt = DeepgramSTT(fake.base_url, "dg-wrong-key", "nova-3")
        started = time.monotonic()
        with pytest.raises(ProviderError) as error:
            await stt.transcribe(mulaw.decode(speech), "en")
    assert error.value.kind == "401" and "Invalid credentials" in str(error.value)
    assert "dg-wrong-key" not in str(error.value)
    assert fake.refused == 1 and time.monotonic() - started < 1.0  # not retried


@pytest.mark.parametrize("mode, kind", [("rate-limited", "429"), ("server-error", "503"), ("hang", "timeout")])
async def test_refusals_are_retried_for_a_bounded_time(speech, mode, kind):
    async with FakeDeepgram() as fake:
        fake.mode = mode
        stt = DeepgramSTT(
            fake.base_url, API_KEY, "nova-3", retry_window_s=1.0, connect_timeout_s=0.5, finalize_timeout_s=0.5
        )
        started = time.monotonic()
        with pytest.raises(ProviderError) as error:
            await stt.transcribe(mulaw.decode(speech), "en")
        elapsed = time.monotonic() - started
    assert error.value.kind == kind
    assert 1.0 <= elapsed < 3.5, elapsed
    if mode != "hang":
        assert fake.refused >= 3  # retried with backoff, not once


async def test_a_dropped_socket_reconnects_and_replays_the_utterance(speech):
    async with FakeDeepgram() as fake:
        fake.mode = "drop-once"
        stream = DeepgramSTT(fake.base_url, API_KEY, "nova-3").open("en")
        await talk(stream, speech, silence_frames=5, pace_s=0.002)
        text = await stream.finalize()
        await stream.close()
    assert text == fake.transcript
    assert len(fake.connections) == 2
    assert bytes(fake.connections[1]["audio"]).startswith(speech[:1600])  # heard again from the start


async def test_a_socket_that_cannot_be_had_again_fails_within_the_window(speech):
    async with FakeDeepgram() as fake:
        fake.mode = "drop"
        stream = DeepgramSTT(fake.base_url, API_KEY, "nova-3", retry_window_s=1.0, finalize_timeout_s=0.5).open("en")
        await talk(stream, speech, silence_frames=5, pace_s=0.002)
        started = time.monotonic()
        with pytest.raises(ProviderError) as error:
            await stream.finalize()
        elapsed = time.monotonic() - started
        fake.mode = "ok"  # the provider is back: the next utterance works on a new socket
        stream.reset()
        await wait_for(lambda: stream.connected)
        await talk(stream, speech, silence_frames=5)
        text = await stream.finalize()
        await stream.close()
    assert error.value.kind == "503"
    assert elapsed < 3.0, elapsed
    assert text == fake.transcript


async def test_a_parked_socket_is_claimed_connected_and_an_unclaimed_one_closes():
    async with FakeDeepgram() as fake:
        parking = StreamParking(DeepgramSTT(fake.base_url, API_KEY, "nova-3"), hold_s=0.3)
        parking.park("CA1", "en")
        parking.park("CA2", "en")
        await wait_for(lambda: len(fake.connections) == 2)
        claimed = parking.claim("CA1", "en")
        assert claimed.connected and len(fake.connections) == 2  # no new handshake
        other_language = parking.claim("CA-never-parked", "hi")
        await wait_for(lambda: len(fake.connections) == 3)
        await wait_for(lambda: len(parking) == 0, timeout_s=2.0)  # CA2 expired
        await wait_for(lambda: "CloseStream" in fake.connections[1]["controls"])
        await claimed.close()
        await other_language.close()
    assert fake.connections[2]["query"]["language"] == "hi"
