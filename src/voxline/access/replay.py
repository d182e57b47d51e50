"""Answer each webhook event once: a replayed webhook gets the answer already given.

Twilio's signature covers the URL and the parameters but no time or nonce, so a captured
``/voice/recording`` request stays valid: replayed, it would run the caller's turn again (a
second reply stored in the history, a second LLM call). The recording's SID names the event, so
the first request's answer is kept and given again, and a replay that arrives while the first is
still being answered waits for it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class AnsweredOnce:
    def __init__(self, keep: int = 4096) -> None:
        self._keep = keep
        self._answers: OrderedDict[str, asyncio.Future[bytes]] = OrderedDict()

    async def answer(self, key: str, make: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        """The answer for ``key`` and whether it was given before (``make`` runs only the first
        time; if it fails, the next request for the key runs it again)."""
        known = self._answers.get(key)
        if known is not None:
            return await asyncio.shield(known), True
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._answers[key] = future
        while len(self._answers) > self._keep:
            self._answers.popitem(last=False)
        try:
            body = await make()
        except BaseException as exc:
            self._answers.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: a replay waiting on it gets it; nobody else must
            raise
        future.set_result(body)
        return body, False
