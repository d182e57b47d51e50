"""Fetching a recording from Twilio's API: Basic auth, a redirect to media storage, errors.

Two local servers play Twilio's API (which demands Basic auth and answers a recording's URL with
a redirect) and its media storage on another origin (which must never see the credentials).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from voxline.audio import mulaw
from voxline.audio.wav import wav_bytes
from voxline.telephony.recordings import RecordingFetcher, RecordingUnavailable

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "recording-secret-token"
LOOPBACK = ("http://127.0.0.1:",)  # where these tests' Twilio API listens (the default allows only Twilio's)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Loopback:
    """An aiohttp application on a free loopback port answering ``GET`` paths from ``routes``."""

    def __init__(self, routes: dict[str, Handler], host: str = "127.0.0.1") -> None:
        self.app = web.Application()
        for path, handler in routes.items():
            self.app.router.add_get(path, handler)
        self.seen: list[dict[str, str]] = []
        self.host = host
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Loopback:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
def recording() -> tuple[np.ndarray, bytes]:
    pcm = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    return pcm, wav_bytes(mulaw.encode(pcm))


async def test_redirect_to_storage_follows_without_the_credentials(recording):
    pcm, wav = recording
    expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

    async def api_get(request: web.Request) -> web.StreamResponse:
        api.seen.append(dict(request.headers))
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text="unauthorized")
        raise web.HTTPFound(f"{storage.url}/media/RE1.wav?Signature=abc")

    async def storage_get(request: web.Request) -> web.Response:
        storage.seen.append(dict(request.headers))
        return web.Response(body=wav, content_type="audio/wav")

    api = Loopback({"/Recordings/RE1.wav": api_get})
    # "localhost" against "127.0.0.1": another origin (host and port), as Twilio's storage is.
    storage = Loopback({"/media/RE1.wav": storage_get}, host="localhost")
    async with storage, api, aiohttp.ClientSession() as http:
        samples = await RecordingFetcher(http, ACCOUNT_SID, AUTH_TOKEN, 2.0, LOOPBACK).fetch(
            f"{api.url}/Recordings/RE1"
        )
    assert [h.get("Authorization") for h in api.seen] == [expected]
    assert len(storage.seen) == 1 and "Authorization" not in storage.seen[0]
    assert samples.dtype == np.int16 and samples.size == pcm.size
    assert np.abs(samples.astype(np.int32) - pcm.astype(np.int32)).max() < 300  # μ-law rounding only


async def test_errors_are_clear_and_only_a_file_not_ready_yet_is_retried(recording):
    _, wav = recording
    served = {"late": 0}

    async def late(request: web.Request) -> web.Response:
        served["late"] += 1
        if served["late"] <= 2:
            return web.Response(status=404, text="not ready")
        return web.Response(body=wav, content_type="audio/wav")

    async def forbidden(request: web.Request) -> web.Response:
        api.seen.append(dict(request.headers))
        return web.Response(status=403, text="no")

    api = Loopback({"/Recordings/RElate.wav": late, "/Recordings/REforbidden.wav": forbidden})
    async with api, aiohttp.ClientSession() as http:
        fetcher = RecordingFetcher(http, ACCOUNT_SID, AUTH_TOKEN, 2.0, LOOPBACK)
        assert (await fetcher.fetch(f"{api.url}/Recordings/RElate")).size == 8000
        assert served["late"] == 3
        with pytest.raises(RecordingUnavailable, match=r"HTTP 403$"):
            await fetcher.fetch(f"{api.url}/Recordings/REforbidden")
        assert len(api.seen) == 1  # refused for good: not retried
        with pytest.raises(RecordingUnavailable, match=r"HTTP 404 after \d+ attempts"):
            await RecordingFetcher(http, ACCOUNT_SID, AUTH_TOKEN, 0.5, LOOPBACK).fetch(
                f"{api.url}/Recordings/REmissing"
            )
        for bad in ("", "not a url", "ftp://example.com/Recordings/RE1"):
            with pytest.raises(RecordingUnavailable, match="not on an allowed host"):
                await fetcher.fetch(bad)


async def test_only_the_allowed_host_is_asked_and_a_huge_recording_is_not_read(recording):
    """A forged RecordingUrl cannot send the account's credentials elsewhere, nor fill the memory."""
    _, wav = recording
    huge = b"RIFF" + b"\0" * (300 * 1024)

    async def serve(request: web.Request) -> web.Response:
        api.seen.append(dict(request.headers))
        return web.Response(body=wav if "small" in request.path else huge, content_type="audio/wav")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the size shows only while reading
        await response.prepare(request)
        for _ in range(300):
            await response.write(b"\0" * 1024)
        return response

    api = Loopback(
        {"/Recordings/REsmall.wav": serve, "/Recordings/REhuge.wav": serve, "/Recordings/REtrickle.wav": chunked}
    )
    async with api, aiohttp.ClientSession() as http:
        twilio_only = RecordingFetcher(http, ACCOUNT_SID, AUTH_TOKEN, 0.5)
        with pytest.raises(RecordingUnavailable, match="not on an allowed host"):
            await twilio_only.fetch(f"{api.url}/Recordings/REsmall")
        assert api.seen == []  # nothing was sent there, credentials least of all
        bounded = RecordingFetcher(http, ACCOUNT_SID, AUTH_TOKEN, 0.5, LOOPBACK, max_bytes=200 * 1024)
        assert (await bounded.fetch(f"{api.url}/Recordings/REsmall")).size == 8000
        for name in ("REhuge", "REtrickle"):
            with pytest.raises(RecordingUnavailable, match="more than 204800"):
                await bounded.fetch(f"{api.url}/Recordings/{name}")
