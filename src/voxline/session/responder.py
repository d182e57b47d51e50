"""The responder: what the agent does with a caller's words, the same on every path.

Transcribe (with the STT fallback) → LLM tokens → clauses → speech (with the TTS fallback inside
the stack), and the one failure policy: what was already generated is still spoken, then the
agent's pre-rendered apology, and the call goes on. The streaming and softphone paths feed the
clauses to the pacer as they come; the recording path joins them into one file. Both hand the
responder a ``ReplySink``; cancelling ``answer`` stops the LLM and the synthesis together (they
run in one task group).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import numpy as np

from voxline.config import AgentConfig
from voxline.engine.fallback import fallback_used
from voxline.engine.stack import VoiceStack
from voxline.errors import ProviderError
from voxline.llm.base import ChatMessage, Tools
from voxline.llm.chunking import ClauseChunker
from voxline.llm.events import TextDelta, ToolCall
from voxline.session.tool_use import ToolOutcome, believable

log = logging.getLogger(__name__)

Stage = Literal["stt", "llm", "tts"]


class ReplySink(Protocol):
    """Where a reply goes as it is made."""

    def token(self, text: str) -> None:
        """LLM text as it streams (the first one marks the first token)."""

    def tool_call(self, call: ToolCall) -> None:
        """The LLM asked for a tool (and no tools were offered)."""

    async def use_tool(self, call: ToolCall) -> ToolOutcome:
        """Run a tool the LLM asked for."""
        ...

    def said(self, text: str) -> None:
        """A fixed phrase in an answer (a filler, a tool's answer): part of what the reply says."""

    async def confirmed(self) -> None:
        """Returns once the reply is the turn's (one started at the caller's pause waits until the
        turn is confirmed, or is cancelled): tools act on the world, so never for a guess."""

    def clause(self, text: str, audio: bytes) -> None:
        """A clause synthesized and ready to play (the apology too)."""

    def failed(self, stage: Stage, error: ProviderError) -> None:
        """A provider failed for good (after its retries and any fallback)."""


async def transcribe_with_fallback(
    stack: VoiceStack, first: Callable[[], Awaitable[str]], audio: np.ndarray, language: str
) -> str:
    """``first()``'s text; when it raises ``ProviderError`` and the agent names an STT fallback,
    the kept audio is transcribed by the fallback instead (reported to the call)."""
    try:
        return await first()
    except ProviderError as exc:
        fallback = stack.stt_fallback
        if fallback is None:
            raise
        fallback_used("stt", exc, fallback.name)
        return await fallback.transcribe(audio, language)


class Responder:
    def __init__(self, agent: AgentConfig, stack: VoiceStack) -> None:
        self._agent = agent
        self._stack = stack

    async def transcribe(self, audio: np.ndarray, language: str) -> str:
        """One whole utterance with the agent's STT (and its fallback)."""
        stt = self._stack.stt_for(language)
        return await transcribe_with_fallback(self._stack, lambda: stt.transcribe(audio, language), audio, language)

    async def say(self, phrases: list[tuple[str, str | None]], sink: ReplySink) -> None:
        """Fixed phrases, each in its language's voice (None: the agent's default voice); they are
        pre-rendered, so they play even while a hosted TTS fails."""
        for text, language in phrases:
            sink.clause(text, await self._stack.speak(text, language))

    async def apologise(self, sink: ReplySink) -> None:
        await self.say([(self._agent.apology, None)], sink)

    async def answer(
        self, messages: list[ChatMessage], voice: str | None, sink: ReplySink, tools: Tools | None = None
    ) -> None:
        """Stream the LLM's reply into clauses and speak each while the next is written. With
        ``tools``, the LLM may ask for some instead: they run (a filler is said if they take
        long), and what they answered is spoken."""
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._speak(clauses, voice, sink))
            try:
                calls, worded = await self._generate(messages, clauses, sink, tools)
                if calls:
                    await self._use_tools(messages, calls, clauses, sink)
                elif tools and not worded:  # neither words nor a tool call it could make sense of
                    await self._generate(messages, clauses, sink, None)
            finally:
                clauses.put_nowait(None)

    async def _use_tools(
        self, messages: list[ChatMessage], calls: list[ToolCall], clauses: asyncio.Queue[str | None], sink: ReplySink
    ) -> None:
        llm = self._stack.llm
        if llm.invents_arguments and not all(believable(call, messages) for call in calls):
            log.info("a tool call the caller's words do not support: answering in words instead")
            await self._generate(messages, clauses, sink, None)
            return
        await sink.confirmed()
        work = asyncio.ensure_future(asyncio.gather(*(sink.use_tool(call) for call in calls)))
        try:
            done, _ = await asyncio.wait({work}, timeout=self._agent.filler_after_ms / 1000)
            if not done:
                self._fixed(self._agent.filler, clauses, sink)
            outcomes: list[ToolOutcome] = await work
        finally:
            work.cancel()  # (the caller spoke over it: the tools' reply is not wanted any more)
        if not all(outcome.ok for outcome in outcomes):
            self._fixed(self._agent.tool_failed, clauses, sink)
        elif all(outcome.say for outcome in outcomes):
            for outcome in outcomes:
                self._fixed(outcome.say, clauses, sink)
        else:
            results = [(outcome.call, outcome.say or outcome.answer) for outcome in outcomes]
            await self._generate(llm.with_tool_results(messages, results), clauses, sink, None)

    @staticmethod
    def _fixed(text: str, clauses: asyncio.Queue[str | None], sink: ReplySink) -> None:
        sink.said(text)
        clauses.put_nowait(text)

    async def _generate(
        self,
        messages: list[ChatMessage],
        clauses: asyncio.Queue[str | None],
        sink: ReplySink,
        tools: Tools | None,
    ) -> tuple[list[ToolCall], bool]:
        """Streams one LLM answer into ``clauses``; returns the tool calls it asked for (when
        ``tools`` were offered) and whether it said anything."""
        llm = self._agent.llm
        chunker = ClauseChunker(first_min_words=llm.first_clause_min_words, first_max_words=llm.first_piece_max_words)
        calls: list[ToolCall] = []
        worded = False
        try:
            async for event in self._stack.llm.stream(messages, llm.max_tokens, llm.temperature, tools):
                if isinstance(event, TextDelta):
                    worded = worded or bool(event.text.strip())
                    sink.token(event.text)
                    for clause in chunker.push(event.text):
                        clauses.put_nowait(clause)
                elif tools:
                    calls.append(event)
                else:
                    sink.tool_call(event)
            for clause in chunker.flush():
                clauses.put_nowait(clause)
        except ProviderError as exc:
            # What was already generated is still spoken; then the apology, and the call goes on.
            sink.failed("llm", exc)
            for clause in chunker.flush():
                clauses.put_nowait(clause)
            clauses.put_nowait(self._agent.apology)
            return [], True
        return calls, worded

    async def _speak(self, clauses: asyncio.Queue[str | None], voice: str | None, sink: ReplySink) -> None:
        while (text := await clauses.get()) is not None:
            try:
                audio = await self._stack.speak(text, voice)
            except ProviderError as exc:
                sink.failed("tts", exc)
                await self.apologise(sink)
                while await clauses.get() is not None:  # the rest of the reply is dropped
                    pass
                return
            sink.clause(text, audio)
