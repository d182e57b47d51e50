"""A scripted voice stack and a simulated far end, to drive ``CallSession`` on fake time.

No models and no sockets: the STT reads which utterance it was given from the audio's level
(each scripted utterance is a tone of its own amplitude), the LLM yields scripted tokens with
scripted delays, the TTS returns silence-free audio whose length follows the words, and the far
end plays what it is sent at real-time pace, echoes marks when their audio has played and drops
its buffer on ``clear``, as Twilio does. Time is the event loop's (looptime compacts it), so a
minute of conversation runs in milliseconds and every delay is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import looptime
import numpy as np

from voxline.audio import mulaw
from voxline.config import AgentConfig, load_agent
from voxline.engine.stack import VoiceStack
from voxline.errors import ProviderError
from voxline.llm.base import ChatMessage, openai_tool_messages
from voxline.llm.events import LlmEvent, TextDelta
from voxline.observability.metrics import Metrics
from voxline.session.call import CallLimits, CallSession
from voxline.session.records import CallRecord

FRAME = 160
SILENCE = bytes([0xFF]) * FRAME
SECONDS_PER_WORD = 0.25  # the scripted TTS: a word of audio takes this long to play


def on_fake_time(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on an event loop whose clock jumps over idle time."""
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        runner.run(scenario())


class LevelVad:
    """Voiced when the frame is loud: the scripted caller's tones are, its silence is not."""

    def is_speech(self, frame: np.ndarray) -> bool:
        return int(np.abs(frame).max()) > 500


def tone(amplitude: int, seconds: float) -> list[bytes]:
    """μ-law frames of a square wave at ``amplitude`` (which the scripted STT reads back)."""
    frames = round(seconds / 0.02)
    samples = np.where(np.arange(FRAME) % 20 < 10, amplitude, -amplitude).astype(np.int16)
    return [mulaw.encode(samples)] * frames


class ScriptedSTT:
    """Knows each utterance by its amplitude: ``texts[amplitude]``."""

    name = "scripted-stt"

    def __init__(self, texts: dict[int, str], delay_s: float = 0.15) -> None:
        self.texts = texts
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.fail: ProviderError | None = None
        self.fail_times = 0

    async def transcribe(self, pcm8k: np.ndarray, language: str) -> str:
        await asyncio.sleep(self.delay_s)
        if self.fail is not None and self.fail_times:
            self.fail_times -= 1
            raise self.fail
        level = int(np.abs(pcm8k).max()) if pcm8k.size else 0
        nearest = min(self.texts, key=lambda a: abs(a - level)) if level > 500 else None
        text = self.texts[nearest] if nearest is not None else ""
        self.calls.append(text)
        return text


@dataclass
class ScriptedReply:
    tokens: list[str]
    first_token_s: float = 0.2
    per_token_s: float = 0.02
    fail_after: int | None = None  # raise ProviderError after this many tokens
    crash: bool = False  # raise an unexpected error (a bug) instead


class ScriptedLLM:
    name = "scripted-llm"

    invents_arguments = False

    def __init__(self, replies: list[ScriptedReply], prefills_locally: bool = False) -> None:
        self.replies = list(replies)
        self.prefills_locally = prefills_locally
        self.prompts: list[list[ChatMessage]] = []
        self.prefills: list[list[ChatMessage]] = []
        self.cancelled = 0

    async def prefill(self, messages: list[ChatMessage]) -> None:
        self.prefills.append(messages)

    def with_tool_results(self, messages, results):
        return openai_tool_messages(messages, results)

    async def stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools=None
    ) -> AsyncIterator[LlmEvent]:
        self.prompts.append(messages)
        reply = self.replies.pop(0) if self.replies else ScriptedReply(["Okay."])
        try:
            await asyncio.sleep(reply.first_token_s)
            for index, token in enumerate(reply.tokens):
                if reply.crash:
                    raise RuntimeError("scripted bug")
                if reply.fail_after is not None and index >= reply.fail_after:
                    raise ProviderError("scripted-llm", "500", "scripted failure")
                if index:
                    await asyncio.sleep(reply.per_token_s)
                yield TextDelta(token)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class ScriptedTTS:
    name = "scripted-tts"

    def __init__(self, delay_s: float = 0.1) -> None:
        self.delay_s = delay_s
        self.spoken: list[str] = []
        self.fail_on: str | None = None  # a word that makes synthesis fail

    async def synthesize(self, text: str) -> bytes:
        await asyncio.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in text:
            raise ProviderError("scripted-tts", "503", "scripted failure")
        self.spoken.append(text)
        words = max(1, len(text.split()))
        return bytes([0x10]) * int(8000 * SECONDS_PER_WORD * words)


class FarEnd:
    """Twilio's side of the line: a playback buffer drained in real time, marks echoed in order."""

    def __init__(self) -> None:
        self.on_mark: Callable[[str], None] = lambda name: None
        self.log: list[tuple[float, str, object]] = []  # (time, "audio" | "mark" | "clear" | "echo", detail)
        self._ends_at = 0.0
        self._pending: list[tuple[str, asyncio.TimerHandle]] = []

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def audio(self, ulaw: bytes) -> None:
        now = self._now()
        self._ends_at = max(self._ends_at, now) + len(ulaw) / 8000
        self.log.append((now, "audio", len(ulaw)))

    async def mark(self, name: str) -> None:
        now = self._now()
        self.log.append((now, "mark", name))
        handle = asyncio.get_running_loop().call_at(max(now, self._ends_at), self._echo, name)
        self._pending.append((name, handle))

    async def clear(self) -> None:
        self.log.append((self._now(), "clear", None))
        self._ends_at = self._now()
        pending, self._pending = self._pending, []
        for name, handle in pending:
            handle.cancel()
            self._echo(name)

    def _echo(self, name: str) -> None:
        self._pending = [(n, h) for n, h in self._pending if n != name]
        self.log.append((self._now(), "echo", name))
        self.on_mark(name)

    def times(self, kind: str) -> list[float]:
        return [t for t, k, _ in self.log if k == kind]

    def audio_seconds(self) -> float:
        return sum(int(d) for _, k, d in self.log if k == "audio") / 8000  # type: ignore[call-overload]


class RecordingControl:
    def __init__(self) -> None:
        self.hung_up_at: float | None = None

    async def hang_up(self) -> None:
        self.hung_up_at = asyncio.get_running_loop().time()

    async def transfer(self, to: str) -> None:
        raise NotImplementedError

    async def send_digits(self, digits: str) -> None:
        raise NotImplementedError


@dataclass
class Call:
    """One scripted call: its session, far end, stack and what the caller does."""

    session: CallSession
    far_end: FarEnd
    stack: VoiceStack
    stt: ScriptedSTT
    llm: ScriptedLLM
    tts: ScriptedTTS
    control: RecordingControl
    metrics: Metrics
    agent: AgentConfig
    record: CallRecord = field(init=False)

    def __post_init__(self) -> None:
        self.record = self.session.record

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def send(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.session.on_audio(frame)
            await asyncio.sleep(0.02)

    async def say(self, amplitude: int, seconds: float = 1.0) -> float:
        """Speak one utterance; returns when its last voiced frame was sent."""
        await self.send(tone(amplitude, seconds))
        return self.now()

    async def silence(self, seconds: float) -> None:
        await self.send([SILENCE] * round(seconds / 0.02))

    async def until(self, condition: Callable[[], bool], timeout_s: float = 30.0, step_s: float = 0.02) -> None:
        """Send silence until ``condition`` holds (the line is live throughout, as on a real call)."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self.silence(step_s)

    async def until_heard(self, turn: int) -> None:
        """Until the first audio of ``turn``'s reply has gone out."""

        def audible() -> bool:
            reply = self.session._reply
            return reply is not None and reply.turn == turn and reply.audible

        await self.until(audible)

    async def quiet(self, seconds: float = 2.0) -> None:
        """Until the caller's turn has ended, the agent has stopped talking and nothing is pending,
        then ``seconds`` more."""
        await self.silence(0.5)
        session = self.session
        await self.until(
            lambda: not session._live and not session._pacer.busy and not session._turn_taking.caller_speaking
        )
        await self.silence(seconds)

    async def close(self) -> None:
        await self.session.close()

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def start_call(
    texts: dict[int, str],
    replies: list[ScriptedReply] | None = None,
    agent: AgentConfig | None = None,
    limits: CallLimits = CallLimits(),
    prefills_locally: bool = False,
    stt_delay_s: float = 0.15,
    stt_fallback: ScriptedSTT | None = None,
    greet: bool = True,
) -> Call:
    """A call session on a scripted stack, started, with its greeting heard (unless ``greet`` is False)."""
    agent = agent or load_agent(None)
    stt, llm, tts = ScriptedSTT(texts, stt_delay_s), ScriptedLLM(replies or [], prefills_locally), ScriptedTTS()
    stack = VoiceStack(
        stt=stt,
        llm=llm,
        tts=tts,
        make_vad=LevelVad,
        pools=[],
        fixed_phrases={},  # type: ignore[arg-type]
        stt_fallback=stt_fallback,
    )  # type: ignore[arg-type]
    if agent.languages:
        stack.tts_by_language = {code: tts for code in agent.languages}  # type: ignore[misc]
        stack.stt_by_language = {code: stt for code in agent.languages}  # type: ignore[misc]
        stack.chooser_stt = stt  # type: ignore[assignment]
    await stack.prerender(agent)
    tts.spoken.clear()
    far_end, control, metrics = FarEnd(), RecordingControl(), Metrics()
    record = CallRecord(call_sid="CA" + "1" * 32, stream_sid="MZ" + "1" * 32, agent=agent.name)
    loop = asyncio.get_running_loop()
    session = CallSession(
        record, agent, stack, far_end, control=control, limits=limits, metrics=metrics, clock=loop.time
    )
    far_end.on_mark = session.on_mark
    session.start()
    call = Call(session, far_end, stack, stt, llm, tts, control, metrics, agent)
    await call.until(lambda: session._reply is not None)  # the greeting has begun
    if greet:
        await call.quiet(0.2)
    return call


@contextlib.asynccontextmanager
async def scripted_call(texts: dict[int, str], **kwargs) -> AsyncIterator[Call]:
    call = await start_call(texts, **kwargs)
    try:
        yield call
    finally:
        await call.close()
