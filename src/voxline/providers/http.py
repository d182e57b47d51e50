"""One request to a hosted provider with bounded retries, errors turned into ``ProviderError``.

429, 5xx, timeouts and dropped connections are retried with a short backoff until
``retry_window_s`` has passed; anything else fails at once. The provider's own error message is
kept; credentials are sent in headers and never appear in messages or logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from voxline.errors import ProviderError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    detail = data.get("detail") if isinstance(data, dict) else None  # ElevenLabs: {"detail": {"message": …}}
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    return str(error or detail or text[:300])


async def request_with_retries(client: httpx.AsyncClient, provider: str, method: str, url: str, *,
                               timeout_s: float, retry_window_s: float, **kwargs: Any) -> httpx.Response:
    deadline = time.monotonic() + retry_window_s
    delay = 0.2
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
    while True:
        try:
            response = await client.request(method, url, timeout=timeout, **kwargs)
            if response.status_code < 400:
                return response
            error = ProviderError(provider, str(response.status_code), error_message(response.content))
            if response.status_code not in RETRYABLE_STATUS:
                raise error
        except httpx.TimeoutException as exc:
            error = ProviderError(provider, "timeout", type(exc).__name__)
        except httpx.TransportError as exc:
            error = ProviderError(provider, "connection", type(exc).__name__)
        if time.monotonic() + delay > deadline:
            raise error
        log.warning("%s; retrying in %.1f s", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


class HostedEndpoint:
    """One provider URL with its credentials and bounds: what every hosted STT/TTS client holds."""

    def __init__(self, client: httpx.AsyncClient, provider: str, url: str, headers: dict[str, str],
                 timeout_s: float, retry_window_s: float) -> None:
        self.client = client
        self.provider = provider
        self.url = url
        self.headers = headers
        self.timeout_s = timeout_s
        self.retry_window_s = retry_window_s

    async def post(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """POST with the credentials; ``headers`` adds to them (a pre-encoded body's Content-Type)."""
        return await request_with_retries(self.client, self.provider, "POST", self.url, timeout_s=self.timeout_s,
                                          retry_window_s=self.retry_window_s,
                                          headers={**self.headers, **headers} if headers else self.headers, **kwargs)


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
