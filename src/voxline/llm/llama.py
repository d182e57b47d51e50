"""Embedded LLM: llama.cpp (llama-cpp-python) running a GGUF shipped inside a PyPI package.

One model per process, shared by every call. Generation runs on the model's own worker thread
and hands tokens to the event loop as they come. llama.cpp keeps the KV cache of the previous
prompt and reuses its longest common prefix, so the agent's system prompt (the same for every
call) is evaluated once at warm-up and never again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import AsyncIterator

from voxline.engine.pool import ModelPool
from voxline.llm.base import ChatMessage

log = logging.getLogger(__name__)

_DONE = object()


class LlamaChat:
    def __init__(self, name: str, gguf: Path, pool: ModelPool, threads: int, context_tokens: int) -> None:
        from llama_cpp import Llama

        self.name = name
        self._llm = Llama(
            model_path=str(gguf),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            verbose=False,
        )
        self._pool = pool
        self._lock = threading.Lock()

    def _generate(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                  emit, stop: threading.Event) -> None:
        with self._lock:
            chunks = self._llm.create_chat_completion(
                messages=list(messages), stream=True, max_tokens=max_tokens, temperature=temperature,
                top_k=1 if temperature == 0 else 40, repeat_penalty=1.1,
            )
            for chunk in chunks:
                if stop.is_set():
                    break
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    emit(delta)

    async def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float) -> AsyncIterator[str]:
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
                yield item  # type: ignore[misc]
        finally:
            stop.set()

    def warm_up(self, system_prompt: str) -> None:
        """Evaluate the system prompt once so every call starts from a cached prefix."""
        done = threading.Event()
        self._generate([{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hello"}],
                       4, 0.0, lambda _t: None, done)
