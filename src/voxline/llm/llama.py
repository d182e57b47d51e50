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
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from voxline.llm.base import ChatMessage, Tools
from voxline.llm.events import LlmEvent, TextDelta, ToolCall
from voxline.providers.pool import ModelPool

log = logging.getLogger(__name__)

_DONE = object()


def parse_tool_calls(text: str, names: set[str]) -> list[ToolCall]:
    """Tool calls a model wrote with its chat template's convention: one JSON object
    ``{"name": …, "arguments": {…}}`` per line, inside ``<tool_call>`` tags (which llama.cpp may
    leave out of the text: they are special tokens). Anything else is not a tool call."""
    calls: list[ToolCall] = []
    for line in text.replace("<tool_call>", "\n").replace("</tool_call>", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            data: Any = json.loads(line)
        except ValueError:
            return []
        arguments = data.get("arguments", {}) if isinstance(data, dict) else None
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return []
        if not isinstance(data, dict) or data.get("name") not in names or not isinstance(arguments, dict):
            return []
        calls.append(ToolCall(id=f"call_{len(calls) + 1}", name=data["name"], arguments=arguments))
    return calls


class LlamaChat:
    prefills_locally = True
    # A small model sometimes fills a tool's arguments with values nobody said: they are checked.
    invents_arguments = True

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
        self.tools: Tools | None = None  # the agent's, set at warm-up: prefills evaluate the same prompt

    def _tokens(self, messages: list[ChatMessage], open_ended: bool = False, tools: Tools | None = None) -> list[int]:
        """The chat prompt as tokens; ``open_ended`` stops right after the last message's text.
        ``tools`` go where the model's chat template puts them (Qwen 2.5: the system prompt)."""
        formatted = self._format(messages=list(messages), tools=tools or None)  # type: ignore[arg-type]
        prompt = formatted.prompt
        if open_ended:
            last = messages[-1]["content"]
            prompt = prompt[: prompt.rfind(last) + len(last)]
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    def _generate(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        temperature: float,
        emit,
        stop: threading.Event,
        tools: Tools | None = None,
    ) -> None:
        tokens = self._tokens(messages, tools=tools)
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

    def prefill_blocking(self, messages: list[ChatMessage], tools: Tools | None = None) -> int:
        """Evaluate the prompt up to the end of the last message; returns the tokens evaluated."""
        tokens = self._tokens(messages, open_ended=True, tools=tools)
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
        evaluated = await self._pool.run(self.prefill_blocking, messages, self.tools)
        log.debug("prefilled %d prompt tokens", evaluated)

    def with_tool_results(self, messages: list[ChatMessage], results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        """A note in the caller's turn: the 0.5B model phrases an answer from it, where it only
        repeats its call after the template's own ``<tool_response>``."""
        notes = "; ".join(f"{call.name} answered {answer}" for call, answer in results)
        return [*messages, {"role": "user", "content": f"(Tell me in one short sentence what you found: {notes})"}]

    async def stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools: Tools | None = None
    ) -> AsyncIterator[LlmEvent]:
        if not tools:
            async for event in self._stream(messages, max_tokens, temperature, None):
                yield event
            return
        # With tools the reply is either words or tool calls, told apart by how it starts.
        names = {tool["function"]["name"] for tool in tools}
        head = ""
        calling = False
        async for event in self._stream(messages, max_tokens, temperature, tools):
            assert isinstance(event, TextDelta)
            if calling or not head.strip():
                head += event.text
                calling = calling or head.lstrip()[:1] in ("{", "<")
                if calling or not head.strip():
                    continue
                event = TextDelta(head)
            yield event
        if calling:
            calls = parse_tool_calls(head, names)
            if not calls:
                log.warning("the LLM wrote something that is not a tool call or words: %.80r", head)
            for call in calls:
                yield call

    async def _stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools: Tools | None
    ) -> AsyncIterator[LlmEvent]:
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
                self._generate(messages, max_tokens, temperature, emit, stop, tools)
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

    def warm_up(self, system_prompt: str, tools: Tools | None = None) -> None:
        """Evaluate the system prompt (with the agent's tools) once so every call starts from a
        cached prefix; prefills use the same tools."""
        self.tools = tools or None
        self._generate(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hello"}],
            4,
            0.0,
            lambda _t: None,
            threading.Event(),
            self.tools,
        )
