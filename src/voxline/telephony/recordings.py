"""Fetching a caller's recording from Twilio: Basic auth, pooled connections, bounded retries.

Twilio posts the ``<Record>`` action as soon as the recording ends, but the file may not be
ready yet: a 404 (or a 5xx, or a dropped connection) is retried with a short backoff until
``window_s`` has passed, then the turn is given up with ``RecordingUnavailable``.

Twilio may answer with a redirect to its media storage; it is followed, and aiohttp drops the
``Authorization`` header when a redirect leads to another origin, so the account's credentials
only ever go to the host named in ``RecordingUrl``. That host must be Twilio's API (over https;
``VOXLINE_RECORDING_URL_PREFIXES`` names others), so a forged webhook cannot make the server fetch
from, and send the account's credentials to, anywhere else; and a recording larger than a
``<Record>`` can make (``VOXLINE_RECORDING_MAX_BYTES``) is not read past that size.
"""

from __future__ import annotations

import io
import logging
import wave

import aiohttp
import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE, resample
from voxline.providers.http import RetryWindow
from voxline.telephony.messages import shown

log = logging.getLogger(__name__)

RETRY_STATUS = {404, 408, 409, 425, 429, 500, 502, 503, 504}


class RecordingUnavailable(RuntimeError):
    pass


def decode_wav(data: bytes) -> np.ndarray:
    """A 16-bit PCM WAV (Twilio's recording format) as 8 kHz int16."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2:
                raise RecordingUnavailable(f"recording is {8 * w.getsampwidth()}-bit, expected 16-bit PCM")
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            if w.getnchannels() > 1:
                samples = samples.reshape(-1, w.getnchannels())[:, 0]
            return resample(samples.astype(np.int16), w.getframerate(), TELEPHONY_RATE)
    except (wave.Error, EOFError) as exc:
        raise RecordingUnavailable(f"recording is not a readable WAV: {exc}") from None


class RecordingFetcher:
    def __init__(
        self,
        client: aiohttp.ClientSession,
        account_sid: str,
        auth_token: str,
        window_s: float,
        allowed_prefixes: tuple[str, ...] = ("https://api.twilio.com/",),
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._client = client
        self._headers = (
            {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)} if account_sid and auth_token else {}
        )
        self._window_s = window_s
        self._allowed = allowed_prefixes
        self._max_bytes = max_bytes

    async def _body(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        if (response.content_length or 0) > self._max_bytes:
            raise RecordingUnavailable(f"{url} is {response.content_length} bytes, more than {self._max_bytes}")
        data = await response.content.read(self._max_bytes + 1)
        while len(data) <= self._max_bytes and (more := await response.content.read(self._max_bytes + 1 - len(data))):
            data += more
        if len(data) > self._max_bytes:
            raise RecordingUnavailable(f"{url} is more than {self._max_bytes} bytes")
        return data

    async def fetch(self, recording_url: str) -> np.ndarray:
        if not recording_url.startswith(self._allowed):
            raise RecordingUnavailable(
                f"RecordingUrl {shown(recording_url, 120)} is not on an allowed host ({', '.join(self._allowed)})"
            )
        url = recording_url + ".wav"
        window = RetryWindow(self._window_s, first_delay_s=0.1)
        attempt = 0
        while True:
            attempt += 1
            problem: str
            try:
                step_s = max(1.0, window.remaining_s())  # to connect, and between two reads
                timeout = aiohttp.ClientTimeout(total=None, connect=step_s, sock_read=step_s)
                async with self._client.get(url, headers=self._headers, timeout=timeout) as response:
                    status = response.status
                    data = await self._body(response, url) if status == 200 else b""
                if status == 200:
                    return decode_wav(data)
                problem = f"HTTP {status}"
                if status not in RETRY_STATUS:
                    raise RecordingUnavailable(f"fetching {url}: {problem}")
            except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
                raise RecordingUnavailable(f"RecordingUrl {shown(recording_url, 120)} is not usable: {exc}") from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not window.allows_another():
                raise RecordingUnavailable(f"fetching {url}: {problem} after {attempt} attempts")
            log.info("recording not ready (%s), retrying in %.1f s", problem, window.delay)
            await window.wait()
