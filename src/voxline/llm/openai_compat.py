"""Hosted LLMs through the OpenAI-compatible chat completions API, streamed.

One client serves OpenAI, Groq, Ollama, vLLM and llama.cpp's server alike: ``POST
{base_url}/chat/completions`` with ``"stream": true`` answers with server-sent events, one
``data: {chat.completion.chunk}`` per token group and ``data: [DONE]`` at the end. Connections come
from the process's pooled aiohttp session. Before the first token, a refusal that may pass (429,
5xx, a timeout, a dropped connection) is retried within ``retry_window_s``; after it, a failure
ends the reply with ``ProviderError`` (what was already said stays said). The API key is sent
and never logged. A finished reply is read to its end, so its connection goes back to the pool;
a reply cut short (a barge-in closes the generator) releases its response: the unread stream's
connection is closed rather than handed back to the pool half-read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import aiohttp

from voxline.errors import ProviderError
from voxline.llm.base import ChatMessage, Tools, openai_tool_messages
from voxline.llm.events import LlmEvent, TextDelta, ToolCall
from voxline.providers.http import (
    CONNECTION_ERRORS,
    RETRYABLE_STATUS,
    RetryWindow,
    bearer,
    error_message,
    provider_timeout,
)

log = logging.getLogger(__name__)


class OpenAICompatibleChat:
    prefills_locally = False
    invents_arguments = False

    def __init__(
        self,
        client: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        model: str,
        provider: str = "openai",
        timeout_s: float = 10.0,
        retry_window_s: float = 3.0,
    ) -> None:
        self.name = f"{provider}:{model}"
        self.provider = provider
        self._client = client
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = bearer(api_key)
        self._model = model
        self._timeout = provider_timeout(timeout_s)
        self._retry_window_s = retry_window_s

    async def prefill(self, messages: list[ChatMessage]) -> None:
        """Hosted APIs cache prompts on their side; nothing to do ahead of time."""

    def with_tool_results(self, messages: list[ChatMessage], results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        return openai_tool_messages(messages, results)

    async def stream(
        self, messages: list[ChatMessage], max_tokens: int, temperature: float, tools: Tools | None = None
    ) -> AsyncIterator[LlmEvent]:
        body: dict[str, object] = {
            "model": self._model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if tools:
            body["tools"] = tools
        window = RetryWindow(self._retry_window_s)
        while True:
            started = False
            try:
                async with self._client.post(
                    self._url, json=body, headers=self._headers, timeout=self._timeout
                ) as response:
                    if response.status != 200:
                        await self._refused(response)
                    async for event in self._events(response):
                        started = True
                        yield event
                return
            except ProviderError as exc:
                if started or exc.kind not in {str(s) for s in RETRYABLE_STATUS} or not window.allows_another():
                    raise
                problem = str(exc)
            except (TimeoutError, *CONNECTION_ERRORS) as exc:  # type: ignore[misc]  # a tuple of classes
                kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
                if started or not window.allows_another():
                    raise ProviderError(self.provider, kind, f"{type(exc).__name__} {exc}".strip()) from None
                problem = f"{kind}: {type(exc).__name__}"
            log.warning("%s: %s; retrying in %.1f s", self.name, problem, window.delay)
            await window.wait()

    async def _refused(self, response: aiohttp.ClientResponse) -> None:
        raise ProviderError(self.provider, str(response.status), error_message(await response.read()))

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[LlmEvent]:
        finished = False
        calls: dict[int, dict[str, str]] = {}  # tool calls arrive in pieces, by index
        async for line in response.content:  # one server-sent-event line at a time, b"\n" included
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                # What follows is only the end of the stream. Reading it hands the connection back
                # to the pool: released unread, it would be closed and the next reply would pay a
                # new connection (a TLS handshake to a hosted API).
                await response.content.read()
                finished = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                shown = data[:100].decode("utf-8", "replace")
                raise ProviderError(self.provider, "protocol", f"not JSON: {shown}") from None
            if "error" in chunk:
                raise ProviderError(self.provider, "stream-error", str(chunk["error"].get("message", chunk["error"])))
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if text := delta.get("content"):
                    yield TextDelta(text)
                for part in delta.get("tool_calls") or []:
                    call = calls.setdefault(int(part.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                    function = part.get("function") or {}
                    call["id"] = part.get("id") or call["id"]
                    call["name"] = function.get("name") or call["name"]
                    call["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    finished = True
                    for call in calls.values():
                        yield self._tool_call(call)
                    calls.clear()
        if not finished:
            raise ProviderError(self.provider, "connection", "the stream ended before the reply was complete")

    def _tool_call(self, call: dict[str, str]) -> ToolCall:
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError:
            raise ProviderError(
                self.provider, "protocol", f"tool call {call['name']!r}: arguments are not JSON"
            ) from None
        if not isinstance(arguments, dict):
            raise ProviderError(self.provider, "protocol", f"tool call {call['name']!r}: arguments are not an object")
        return ToolCall(id=call["id"], name=call["name"], arguments=arguments)
