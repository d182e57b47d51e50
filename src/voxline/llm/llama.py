"""Embedded LLM: llama.cpp (llama-cpp-python) running a GGUF shipped inside a PyPI package.

One model per process, shared by every call. Generation runs on the model's own worker thread
and hands tokens to the event loop as they come.

Prompt evaluation is the expensive part on a small CPU (about 14 ms per token on 2 cores, against
about 45 ms per generated token), so Voxline avoids it wherever it can. llama.cpp keeps the KV
cache of the last sequence and reuses its longest common prefix: the agent's system prompt is
evaluated once at warm-up, and ``prefill`` evaluates the caller's words while they are still
talking (from partial transcripts), so when the turn ends only the last few tokens are new.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from voxline.llm.base import ChatMessage
from voxline.llm.events import LlmEvent, TextDelta
from voxline.providers.pool import ModelPool

log = logging.getLogger(__name__)

_DONE = object()


class LlamaChat:
    prefills_locally = True

    def __init__(self, name: str, gguf: Path, pool: ModelPool, threads: int, context_tokens: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self._llm = Llama(
            model_path=str(gguf),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            verbose=False,
        )
        eos = self._llm.token_eos()
        bos = self._llm.token_bos()
        self._format = Jinja2ChatFormatter(
            template=self._llm.metadata["tokenizer.chat_template"],
            eos_token=self._llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self._llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        self._pool = pool
        self._lock = threading.Lock()

    def _tokens(self, messages: list[ChatMessage], open_ended: bool = False) -> list[int]:
        """The chat prompt as tokens; ``open_ended`` stops right after the last message's text."""
        formatted = self._format(messages=list(messages))  # type: ignore[arg-type]  # the same TypedDict shape
        prompt = formatted.prompt
        if open_ended:
            last = messages[-1]["content"]
            prompt = prompt[: prompt.rfind(last) + len(last)]
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    def _generate(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, emit, stop: threading.Event
    ) -> None:
        tokens = self._tokens(messages)
        with self._lock:
            chunks = self._llm.create_completion(
                prompt=tokens,
                stream=True,
                max_tokens=max_tokens,
                temperature=temperature,
                top_k=1 if temperature == 0 else 40,
                repeat_penalty=1.1,
            )
            for chunk in chunks:
                if stop.is_set():
                    break
                text = chunk["choices"][0]["text"]  # type: ignore[index]  # stream=True yields dicts
                if text:
                    emit(text)

    def prefill_blocking(self, messages: list[ChatMessage]) -> int:
        """Evaluate the prompt up to the end of the last message; returns the tokens evaluated."""
        tokens = self._tokens(messages, open_ended=True)
        with self._lock:
            if len(tokens) >= self._llm.n_ctx():
                return 0
            cached = self._llm.input_ids[: self._llm.n_tokens].tolist()
            common = self._llm.longest_token_prefix(cached, tokens)
            if common == len(tokens):
                return 0
            self._llm.n_tokens = common
            self._llm.eval(tokens[common:])
            return len(tokens) - common

    async def prefill(self, messages: list[ChatMessage]) -> None:
        evaluated = await self._pool.run(self.prefill_blocking, messages)
        log.debug("prefilled %d prompt tokens", evaluated)

    async def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float) -> AsyncIterator[LlmEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def produce() -> None:
            try:
                self._generate(messages, max_tokens, temperature, emit, stop)
            except BaseException as exc:  # handed to the consumer, raised there
                emit(exc)
            finally:
                emit(_DONE)

        self._pool.submit(produce)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield TextDelta(item)  # type: ignore[arg-type]
        finally:
            stop.set()

    def warm_up(self, system_prompt: str) -> None:
        """Evaluate the system prompt once so every call starts from a cached prefix."""
        self._generate(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hello"}],
            4,
            0.0,
            lambda _t: None,
            threading.Event(),
        )
