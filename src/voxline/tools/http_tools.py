"""Calling the business's tools and delivering what the agent took down to its webhook.

A tool is ``POST url`` with the arguments as JSON and the agent file's headers (``${NAME}`` from
the environment), within its ``timeout_s``; its answer is JSON. A message (or another result the
agent collected) is POSTed to the business's webhook in the background, signed
``X-Voxline-Signature: sha256=<hex HMAC-SHA256 of the body>`` with a secret from the environment,
and retried (three tries, 1 s then 4 s apart) until the endpoint answers 2xx; the call never waits
for it. One pooled HTTP client for all of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from voxline.config import ToolSettings

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
RETRY_DELAYS_S = (1.0, 4.0)
SIGNATURE_HEADER = "X-Voxline-Signature"


@dataclass
class ToolAnswer:
    """What a tool answered (``ok``), or why it did not (``error``), and how long it took."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    ms: float = 0.0

    def say(self, template: str, arguments: dict[str, Any]) -> str:
        """What to say with it: the answer's own ``say``, else ``template`` filled from the
        arguments and the answer, else '' (the LLM phrases the answer)."""
        if isinstance(self.data.get("say"), str) and self.data["say"].strip():
            return str(self.data["say"]).strip()
        if template:
            try:
                return template.format(**{**arguments, **self.data})
            except (KeyError, IndexError, ValueError):
                log.warning("tool answer lacks a field its say template needs: %s", template)
        return ""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpTools:
    def __init__(self, http: aiohttp.ClientSession, tools: list[ToolSettings]) -> None:
        self._http = http
        self._tools = {tool.name: tool for tool in tools}
        self._deliveries: set[asyncio.Task[bool]] = set()

    def knows(self, name: str) -> bool:
        return name in self._tools

    def settings(self, name: str) -> ToolSettings:
        return self._tools[name]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        tool = self._tools[name]
        started = time.monotonic()
        try:
            async with asyncio.timeout(tool.timeout_s):
                async with self._http.post(tool.url, json=arguments, headers=tool.resolved_headers()) as response:
                    body = await response.content.read(MAX_ANSWER_BYTES + 1)
                    if response.status // 100 != 2:
                        return self._failed(started, f"HTTP {response.status}")
        except TimeoutError:
            return self._failed(started, f"no answer within {tool.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(started, f"unreachable: {type(exc).__name__}")
        if len(body) > MAX_ANSWER_BYTES:
            return self._failed(started, f"answer over {MAX_ANSWER_BYTES} bytes")
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._failed(started, "answer is not JSON")
        if not isinstance(data, dict):
            data = {"result": data}
        return ToolAnswer(ok=True, data=data, ms=(time.monotonic() - started) * 1000)

    @staticmethod
    def _failed(started: float, error: str) -> ToolAnswer:
        return ToolAnswer(ok=False, error=error, ms=(time.monotonic() - started) * 1000)

    def deliver(self, url: str, secret_env: str, payload: dict[str, Any]) -> asyncio.Task[bool]:
        """POST ``payload`` to the business's webhook in the background (signed, retried)."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, os.environ.get(secret_env, ""), payload))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return task

    async def _deliver(self, url: str, secret: str, payload: dict[str, Any]) -> bool:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S), start=1):
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(10):
                    async with self._http.post(url, data=body, headers=headers) as response:
                        if response.status // 100 == 2:
                            return True
                        problem = f"HTTP {response.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problem = type(exc).__name__
            log.warning("webhook delivery, try %d: %s", attempt, problem)
        log.error("webhook delivery failed after %d tries; the result is kept with the call", 1 + len(RETRY_DELAYS_S))
        return False

    async def close(self, wait_s: float = 5.0) -> None:
        """Let deliveries in flight finish (for at most ``wait_s``)."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=wait_s)
