"""Fetching a caller's recording from Twilio: Basic auth, pooled connections, bounded retries.

Twilio posts the ``<Record>`` action as soon as the recording ends, but the file may not be
ready yet: a 404 (or a 5xx, or a dropped connection) is retried with a short backoff until
``window_s`` has passed, then the turn is given up with ``RecordingUnavailable``.

Twilio may answer with a redirect to its media storage; it is followed, and aiohttp drops the
``Authorization`` header when a redirect leads to another origin, so the account's credentials
only ever go to the host named in ``RecordingUrl``.
"""

from __future__ import annotations

import io
import logging
import wave

import aiohttp
import numpy as np

from voxline.audio.pcm import TELEPHONY_RATE, resample
from voxline.providers.http import RetryWindow

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
    def __init__(self, client: aiohttp.ClientSession, account_sid: str, auth_token: str, window_s: float) -> None:
        self._client = client
        self._headers = (
            {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)} if account_sid and auth_token else {}
        )
        self._window_s = window_s

    async def fetch(self, recording_url: str) -> np.ndarray:
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
                    data = await response.read() if status == 200 else b""
                if status == 200:
                    return decode_wav(data)
                problem = f"HTTP {status}"
                if status not in RETRY_STATUS:
                    raise RecordingUnavailable(f"fetching {url}: {problem}")
            except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
                raise RecordingUnavailable(f"RecordingUrl {recording_url!r} is not usable: {exc}") from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not window.allows_another():
                raise RecordingUnavailable(f"fetching {url}: {problem} after {attempt} attempts")
            log.info("recording not ready (%s), retrying in %.1f s", problem, window.delay)
            await window.wait()
