"""End to end: the real server on a loopback port, the simulator playing Twilio, real human speech."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from conftest import AUTH_TOKEN
from voxline.audio.pcm import TELEPHONY_RATE, write_wav
from voxline.session.timeline import STAGES
from voxline.simulator.caller import CallerTurn, SimulatedCall
from voxline.simulator.voices import speech_from_wav

pytestmark = pytest.mark.e2e

GREETING_WORDS = {"thank", "calling", "sunrise", "dental", "help", "today"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


async def test_two_turn_conversation_with_real_speech(server, librivox, artifacts):
    turns = [
        CallerTurn("young-man", speech_from_wav(librivox["0880"])),
        CallerTurn("amiable", speech_from_wav(librivox["0930"])),
    ]
    result = await SimulatedCall(server.url, AUTH_TOKEN).run(turns)
    write_wav(artifacts / "two_turn_call.wav", result.heard(), TELEPHONY_RATE)

    stream = ET.fromstring(result.twiml).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == server.url.replace("http", "ws", 1) + "/media-stream"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["CallSid"] == result.call_sid

    greeting = server.transcribe(result.heard(result.started, result.turns[0].speech_start))
    assert len(words(greeting) & GREETING_WORDS) >= 4, greeting

    record = await server.wait_record_closed(result.call_sid)
    assert record.outcome == "completed"
    assert [t.index for t in record.turns] == [1, 2]
    assert {"young", "man"} <= words(record.turns[0].caller_text)
    assert {"amiable", "himself"} & words(record.turns[1].caller_text)

    for heard_turn, turn in zip(result.turns, record.turns):
        assert heard_turn.latency_s is not None and heard_turn.latency_s > 0
        assert not turn.interrupted and turn.heard_text == " ".join(turn.heard_text.split())
        reply_heard = server.transcribe(result.heard(heard_turn.speech_end, heard_turn.reply_end))
        said = words(turn.agent_text)
        assert said, "the agent said nothing"
        overlap = len(words(reply_heard) & said) / len(said)
        assert overlap >= 0.5, (reply_heard, turn.agent_text)
        stages = [turn.stages_ms[s] for s in STAGES]
        assert all(v is not None for v in stages), turn.stages_ms
        assert stages == sorted(stages), turn.stages_ms

    # the conversation history holds what the caller heard, in order
    roles = [m["role"] for m in record.history]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    assert result.messages_received.get("clear", 0) == 0


async def test_barge_in_over_the_greeting_clears_fast_and_keeps_only_what_was_heard(server, librivox, artifacts):
    talk_over = CallerTurn("interrupt", speech_from_wav(librivox["0930"]), barge_in_after_s=1.0)
    result = await SimulatedCall(server.url, AUTH_TOKEN).run([talk_over])
    write_wav(artifacts / "barge_in_call.wav", result.heard(), TELEPHONY_RATE)

    turn = result.turns[0]
    assert turn.clear_at is not None, "no clear was sent"
    assert turn.clear_at - turn.speech_start <= 0.3

    record = await server.wait_record_closed(result.call_sid)
    assert any(e["kind"] == "barge-in" for e in record.events)
    greeting = server.services.agent.greeting.split()
    first = record.history[0]
    assert first["role"] == "assistant"
    heard = first["content"].split()
    # about one second of a three-second greeting was played before the caller spoke
    assert 1 <= len(heard) < len(greeting) * 0.6, heard
    assert heard == greeting[: len(heard)]
    # what was played to the caller stops at the clear
    assert (
        result.playback.first_audible_after(turn.clear_at + 0.05) is None
        or result.playback.first_audible_after(turn.clear_at + 0.05) >= turn.speech_end
    )


async def test_a_finished_call_is_freed_without_the_cycle_collector(server, librivox):
    """Every part of a call (session, pacer, listener, stream, socket protocol) points back at
    another; closing the call breaks those links, so its audio and state go when the call does,
    not at a full garbage collection (rare under load)."""
    import asyncio
    import gc
    import time
    import weakref

    from voxline.session.call import CallSession
    from voxline.telephony.direct_socket import DirectWebSocketProtocol
    from voxline.telephony.media_stream import MediaStream

    call = SimulatedCall(server.url, AUTH_TOKEN)
    running = asyncio.create_task(call.run([CallerTurn("freed", speech_from_wav(librivox["0880"]))]))

    def parts_of_the_call() -> list[weakref.ref]:
        """Weak references to the call's session, stream and socket protocol, once they exist."""
        objects = gc.get_objects()
        # type(), not isinstance(): the heap may hold dead weak proxies, which isinstance() trips on.
        sessions = [o for o in objects if type(o) is CallSession and o.record.call_sid == call.call_sid]
        streams = [o for o in objects if issubclass(type(o), MediaStream) and sessions and o.session is sessions[0]]
        protocols = [
            o
            for o in objects
            if issubclass(type(o), DirectWebSocketProtocol) and streams and getattr(o, "_receiver", None) is streams[0]
        ]
        del objects
        return [weakref.ref(o) for o in (*sessions[:1], *streams[:1], *protocols[:1])]

    watched: list[weakref.ref] = []
    deadline = time.monotonic() + 20
    while len(watched) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        watched = parts_of_the_call()
    assert len(watched) == 3, "the call's session, stream and protocol were not found"
    gc.disable()
    try:
        result = await running
        assert result.turns[0].latency_s is not None
        deadline = time.monotonic() + 5
        while any(ref() is not None for ref in watched) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        alive = [type(ref()).__name__ for ref in watched if ref() is not None]
        assert alive == [], f"kept alive only by reference cycles: {alive}"
    finally:
        gc.enable()
