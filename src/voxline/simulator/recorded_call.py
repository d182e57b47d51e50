"""Plays Twilio for the recording path (``POST /voice``), as ``voxline call --mode record`` does.

For each turn it follows the TwiML like Twilio: fetches and plays every ``<Play>`` URL in real
time, then "records" the caller while they speak, ends the recording after ``timeout`` seconds
of silence (trimmed, as ``trim="trim-silence"`` asks), serves the recording from a local HTTP
endpoint that demands Basic auth, and posts the ``<Record>`` action. Latency uses the streaming
definition: the caller's last speech frame to the first audible frame of the reply.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voxline.audio import mulaw
from voxline.audio.pcm import TELEPHONY_RATE
from voxline.audio.wav import wav_bytes
from voxline.simulator.caller import CallerTurn, _sid
from voxline.simulator.loopback import LoopbackServer
from voxline.simulator.playback import AUDIBLE_DBFS
from voxline.telephony.recordings import decode_wav
from voxline.telephony.security import sign

log = logging.getLogger(__name__)


@dataclass
class RecordedTurn:
    label: str
    speech_start: float
    speech_end: float
    action_posted: float = 0.0
    twiml_received: float = 0.0
    reply_audible_at: float | None = None
    reply_audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    twiml: str = ""

    @property
    def latency_s(self) -> float | None:
        return None if self.reply_audible_at is None else self.reply_audible_at - self.speech_end


@dataclass
class RecordedCallResult:
    call_sid: str
    greeting_audio: np.ndarray
    turns: list[RecordedTurn]
    final_twiml: str
    recording_requests: int


class RecordingServer(LoopbackServer):
    """Twilio's recordings API in miniature: ``GET /Recordings/{sid}.wav`` with Basic auth.

    ``behaviour``: "ok", "late" (404 for the first two requests, as when a file is not ready),
    or "fail" (always 500).
    """

    def __init__(self, account_sid: str, auth_token: str, behaviour: str = "ok") -> None:
        self.recordings: dict[str, bytes] = {}
        self.requests = 0
        self.behaviour = behaviour
        self._expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        super().__init__(Starlette(routes=[Route("/Recordings/{name}", self._get)]))

    async def _get(self, request: Request) -> Response:
        self.requests += 1
        if not secrets.compare_digest(request.headers.get("authorization", ""), self._expected):
            return Response("unauthorized", status_code=401, headers={"WWW-Authenticate": "Basic"})
        if self.behaviour == "fail" or (self.behaviour == "late" and self.requests <= 2):
            return Response("not ready", status_code=500 if self.behaviour == "fail" else 404)
        name = request.path_params["name"]
        data = self.recordings.get(name.removesuffix(".wav")) if name.endswith(".wav") else None
        return Response(data, media_type="audio/wav") if data else Response("not found", status_code=404)

    def add(self, pcm: np.ndarray) -> str:
        sid = _sid("RE")
        self.recordings[sid] = wav_bytes(mulaw.encode(pcm))
        return f"{self.url}/Recordings/{sid}"


def first_audible_offset(pcm: np.ndarray) -> float | None:
    threshold = 32768.0 * 10 ** (AUDIBLE_DBFS / 20)
    frames = pcm.size // 160
    if frames == 0:
        return None
    levels = np.sqrt(np.mean(pcm[: frames * 160].astype(np.float64).reshape(frames, 160) ** 2, axis=1))
    loud = np.nonzero(levels > threshold)[0]
    return None if loud.size == 0 else loud[0] * 160 / TELEPHONY_RATE


class RecordedCall:
    def __init__(
        self,
        base_url: str,
        auth_token: str = "",
        account_sid: str | None = None,
        public_url: str | None = None,
        recording_behaviour: str = "ok",
        caller: str = "+15005550006",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.caller = caller
        self.public_url = (public_url or base_url).rstrip("/")
        self.auth_token = auth_token
        self.account_sid = account_sid or _sid("AC")
        self.call_sid = _sid("CA")
        self.recording_behaviour = recording_behaviour
        self._clock = time.monotonic

    def _base_params(self, status: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": status,
            "Direction": "inbound",
            "From": self.caller,
            "To": "+15005550001",
            "Caller": self.caller,
            "Called": "+15005550001",
        }

    async def _post(self, client: httpx.AsyncClient, url: str, params: dict[str, str]) -> str:
        public = url.replace(self.base_url, self.public_url, 1)
        headers = {"X-Twilio-Signature": sign(self.auth_token, public, params)} if self.auth_token else {}
        target = public.replace(self.public_url, self.base_url, 1)
        response = await client.post(target, data=params, headers=headers)
        response.raise_for_status()
        return response.text

    async def _play(self, client: httpx.AsyncClient, twiml: str) -> tuple[np.ndarray, float | None, ET.Element | None]:
        """Play every <Play> in real time; returns the audio, when it became audible, and the <Record>."""
        root = ET.fromstring(twiml)
        audio: list[np.ndarray] = []
        audible_at: float | None = None
        for verb in root:
            if verb.tag == "Play":
                url = (verb.text or "").strip().replace(self.public_url, self.base_url, 1)
                response = await client.get(url)
                response.raise_for_status()
                pcm = decode_wav(response.content)
                started = self._clock()
                offset = first_audible_offset(pcm)
                if audible_at is None and offset is not None:
                    audible_at = started + offset
                audio.append(pcm)
                await asyncio.sleep(pcm.size / TELEPHONY_RATE)
            elif verb.tag == "Record":
                return (np.concatenate(audio) if audio else np.zeros(0, np.int16)), audible_at, verb
        return (np.concatenate(audio) if audio else np.zeros(0, np.int16)), audible_at, None

    async def run(self, turns: list[CallerTurn], hang_up: bool = True) -> RecordedCallResult:
        results: list[RecordedTurn] = []
        async with (
            RecordingServer(self.account_sid, self.auth_token, self.recording_behaviour) as recordings,
            httpx.AsyncClient(timeout=60) as client,
        ):
            twiml = await self._post(client, self.base_url + "/voice", self._base_params("ringing"))
            greeting, _, record = await self._play(client, twiml)
            for turn in turns:
                if record is None:
                    break
                timeout_s = float(record.get("timeout", "5"))
                start = self._clock()
                await asyncio.sleep(turn.audio.size / TELEPHONY_RATE)  # the caller speaks
                end = self._clock()
                await asyncio.sleep(timeout_s)  # Twilio waits for the silence timeout
                params = {
                    **self._base_params("in-progress"),
                    "RecordingUrl": recordings.add(turn.audio),
                    "RecordingSid": _sid("RE"),
                    "RecordingDuration": str(round(turn.audio.size / TELEPHONY_RATE)),
                }
                result = RecordedTurn(turn.label, start, end, action_posted=self._clock())
                twiml = await self._post(client, record.get("action", self.base_url + "/voice"), params)
                result.twiml_received = self._clock()
                result.twiml = twiml
                result.reply_audio, result.reply_audible_at, record = await self._play(client, twiml)
                results.append(result)
                log.info(
                    "recorded turn %r: latency %s",
                    turn.label,
                    "none" if result.latency_s is None else f"{result.latency_s * 1000:.0f} ms",
                )
            final = ""
            if hang_up and record is not None:
                params = {
                    **self._base_params("completed"),
                    "RecordingUrl": recordings.add(np.zeros(0, np.int16)),
                    "RecordingSid": _sid("RE"),
                    "RecordingDuration": "0",
                    "Digits": "hangup",
                }
                final = await self._post(client, record.get("action", self.base_url + "/voice"), params)
        return RecordedCallResult(
            call_sid=self.call_sid,
            greeting_audio=greeting,
            turns=results,
            final_twiml=final,
            recording_requests=recordings.requests,
        )
