"""The call's ears: which speech-to-text hears the caller, in which language, and what happens
when it fails.

Before the caller picks a language, a multilingual model listens; after, that language's STT.
With a streaming STT (Deepgram) the call's socket gets every frame as Twilio sent it, so the
transcript is ready when the turn ends. When the provider fails, the utterance audio the session
kept is transcribed by the agent's fallback STT, if it names one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from voxline.config import AgentConfig
from voxline.engine.stack import VoiceStack
from voxline.errors import ProviderError
from voxline.session.responder import transcribe_with_fallback
from voxline.stt.base import SpeechStream

EarlyText = asyncio.Task  # of str | ProviderError: a transcription started when the caller paused


class Listener:
    def __init__(
        self,
        call_sid: str,
        agent: AgentConfig,
        stack: VoiceStack,
        log: logging.LoggerAdapter,
        on_end_of_speech: Callable[[], None],
    ) -> None:
        """``on_end_of_speech`` is called when a streaming provider hears the caller stop (it pushes
        an event to the call's inbox: the listener never holds the session)."""
        self.language = agent.language  # the agent's language code, or the caller's choice among its languages
        self.chosen = not (agent.choose_language and agent.languages)
        self._call_sid = call_sid
        self._agent = agent
        self._stack = stack
        self._log = log
        self._on_end_of_speech: Callable[[], None] | None = on_end_of_speech
        self._stream: SpeechStream | None = None  # the live STT socket, when the STT is a streaming one

    def start(self) -> None:
        """Claim the socket opened when the webhook was answered (streaming STT only)."""
        if self._stack.streams is not None:
            self._open(claim=True)

    def choose(self, code: str) -> SpeechStream | None:
        """The caller picked a language: from now on its STT listens. Returns the live socket it
        replaced, for the caller to close."""
        self.chosen = True
        self.language = code
        if self._stream is not None and self._agent.languages[code].stt_language != self._agent.language:
            return self._open()
        return None

    def stt_language(self) -> str:
        language = self._agent.languages.get(self.language)
        return language.stt_language if language else self._agent.language

    def hear(self, ulaw: bytes) -> None:
        if self._stream is not None:
            self._stream.send(ulaw)  # as Twilio sent it: the provider transcribes while the caller speaks

    def transcribe(self, audio: np.ndarray) -> Awaitable[str]:
        """One utterance, with the STT of the caller's language (the multilingual one before a choice)."""
        if not self.chosen and self._stack.chooser_stt is not None:
            return self._stack.chooser_stt.transcribe(audio, "")
        return self._stack.stt_for(self.language).transcribe(audio, self.stt_language())

    async def partial(self, audio: np.ndarray) -> str:
        """What the caller has said so far in this utterance."""
        if self._stream is not None:
            return self._stream.transcript()
        return await self.transcribe(audio)

    async def early(self, audio: np.ndarray) -> str | ProviderError:
        """Transcription started at the caller's pause. A failure is returned, not raised: the turn
        that takes this result handles it (fallback or apology), and a resumed utterance drops it."""
        try:
            if self._stream is not None:
                return await self._stream.finalize()
            return await self.transcribe(audio)
        except ProviderError as exc:
            self._log.warning("early transcription failed: %s", exc)
            return exc

    async def final(self, audio: np.ndarray, early: EarlyText | None, provider_ended: bool) -> str:
        """The utterance's text: the early result, the live socket's, or a transcription of the audio.
        With a fallback STT, a provider failure transcribes the kept audio with the fallback."""

        async def first() -> str:
            text = await early if early is not None else None
            if isinstance(text, ProviderError):
                raise text
            if text is not None:
                return text
            if self._stream is not None:
                return self._stream.transcript() if provider_ended else await self._stream.finalize()
            self._log.info("processing %d bytes", audio.size * 2)
            return await self.transcribe(audio)

        try:
            return await transcribe_with_fallback(self._stack, first, audio, self.stt_language())
        finally:
            self.reset()

    def reset(self) -> None:
        """The utterance is over (answered or ignored): the socket starts a new one."""
        if self._stream is not None:
            self._stream.reset()

    async def close(self) -> None:
        self._on_end_of_speech = None
        if self._stream is not None:
            self._stream.on_end_of_speech = None
            await self._stream.close()

    def _open(self, claim: bool = False) -> SpeechStream | None:
        """The call's live STT socket: the one opened when the webhook was answered, or a new one.
        Returns the socket it replaces."""
        parking = self._stack.streams
        assert parking is not None
        old = self._stream
        language = self.stt_language()
        self._stream = parking.claim(self._call_sid, language) if claim else parking.stt.open(language)
        self._stream.on_end_of_speech = self._on_end_of_speech
        if old is not None:
            old.on_end_of_speech = None
        return old
