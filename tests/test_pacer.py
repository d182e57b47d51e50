"""The pacer: never more than ~200 ms ahead of real time, whole frames, marks, and what was heard."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from scripted import on_fake_time
from voxline.playout.pacer import FirstFrameSent, Pacer, Piece
from voxline.telephony.line import TwilioLine

STREAM = "MZ" + "a" * 32
pytestmark = pytest.mark.unit


class Line:
    """Records what the pacer sends through the Twilio serializer, with the time it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict]] = []
        self.t0 = time.monotonic()
        self.twilio = TwilioLine(STREAM, self.send)

    async def send(self, text: str) -> None:
        self.sent.append((asyncio.get_running_loop().time() - self.t0, json.loads(text)))

    def media(self) -> list[tuple[float, int]]:
        return [(t, len(base64.b64decode(m["media"]["payload"]))) for t, m in self.sent if m["event"] == "media"]


def pacer_on(line: Line, events=None) -> Pacer:
    line.t0 = asyncio.get_running_loop().time()
    loop = asyncio.get_running_loop()
    return Pacer(line.twilio, 200, events or (lambda event: None), clock=loop.time)


def piece(
    turn: int, index: int, seconds: float, text: str = "one two three four five six seven eight nine ten"
) -> Piece:
    return Piece(turn=turn, index=index, text=text, audio=b"\x10" * int(8000 * seconds))


def test_audio_is_paced_in_whole_frames_with_a_mark_after_each_piece():
    on_fake_time(_paced)


async def _paced():
    line = Line()
    firsts: list[FirstFrameSent] = []
    pacer = pacer_on(line, firsts.append)
    runner = asyncio.create_task(pacer.run())
    pacer.enqueue(piece(1, 0, 0.6))
    pacer.enqueue(piece(1, 1, 0.403))  # not a whole number of frames: padded
    await asyncio.sleep(1.3)
    runner.cancel()

    media = line.media()
    assert all(size % 160 == 0 for _, size in media)
    assert sum(size for _, size in media) == 4800 + 3360
    sent_audio = 0.0
    for at, size in media:
        sent_audio += size / 8000
        assert sent_audio - at <= 0.2 + 0.03, (at, sent_audio)  # never more than ~200 ms ahead
    assert media[0][1] == 1600  # the first 200 ms go out at once
    events = [m["event"] for _, m in line.sent]
    marks = [m["mark"]["name"] for _, m in line.sent if m["event"] == "mark"]
    assert len(marks) == 2 and events[-1] == "mark"
    first_mark = events.index("mark")
    assert (
        sum(
            size
            for _, m in line.sent[:first_mark]
            if m["event"] == "media"
            for size in [len(base64.b64decode(m["media"]["payload"]))]
        )
        == 4800
    )  # after the first piece
    assert all(set(m) == {"event", "streamSid", "media"} for _, m in line.sent if m["event"] == "media")
    assert [e.piece.index for e in firsts] == [0, 1] and firsts[0].at == pytest.approx(line.t0)


def test_marks_report_played_pieces_and_idle():
    on_fake_time(_marks)


async def _marks():
    line = Line()
    pacer = pacer_on(line)
    runner = asyncio.create_task(pacer.run())
    pacer.enqueue(piece(1, 0, 0.1))
    pacer.enqueue(piece(1, 1, 0.1))
    await asyncio.sleep(0.05)
    marks = [m["mark"]["name"] for _, m in line.sent if m["event"] == "mark"]
    assert len(marks) == 2 and pacer.busy
    played = pacer.on_mark(marks[1])  # a later mark implies the earlier ones were played
    assert [p.index for p in played] == [0, 1] and not pacer.busy
    assert pacer.on_mark("unknown") == []
    runner.cancel()


def test_interrupt_clears_and_estimates_what_was_heard():
    on_fake_time(_interrupt)


async def _interrupt():
    line = Line()
    pacer = pacer_on(line)
    runner = asyncio.create_task(pacer.run())
    first, second = piece(2, 0, 1.0), piece(2, 1, 1.0)
    pacer.enqueue(first)
    pacer.enqueue(second)
    await asyncio.sleep(0.5)
    cut = await pacer.interrupt()
    sent_at_clear = len(line.sent)
    await asyncio.sleep(0.2)
    runner.cancel()
    assert line.sent[sent_at_clear - 1][1] == {"event": "clear", "streamSid": STREAM}
    assert len(line.sent) == sent_at_clear  # nothing more is sent after the clear
    assert [p.index for p in cut] == [0, 1]
    assert 0.4 <= first.heard_fraction <= 0.6
    heard = first.heard_text().split()
    assert 4 <= len(heard) <= 6 and heard == first.text.split()[: len(heard)]
    assert second.heard_fraction == 0.0 and second.heard_text() == ""
    assert not pacer.busy
