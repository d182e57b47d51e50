"""Twilio Media Streams messages: parsing what Twilio sends, building what it accepts.

Inbound parsing is tolerant (unknown fields and versions pass; a missing required field is a
``ProtocolError``). Outbound messages carry exactly the documented fields: Twilio silently
drops a message with one field too many.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson

MAX_FRAME_BYTES = 160 * 50  # one inbound media message is 20 ms (160 bytes); refuse anything absurd
MAX_SID_CHARS = 64  # Twilio's SIDs are 34 characters (two letters and 32 hex digits)
MAX_NAME_CHARS = 128  # a mark's name (ours, echoed), a protocol or version string
MAX_PARAMETER_CHARS = 500  # Twilio: "the combined length of each name and value must be under 500 characters"
MAX_PARAMETERS = 32
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_TEXT_CHARS = 1000  # a typed caller turn (softphone)


class ProtocolError(ValueError):
    """A message that does not follow the Media Streams protocol."""


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: list[str]
    encoding: str
    sample_rate: int
    channels: int
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    stream_sid: str
    track: str
    chunk: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True)
class CallerText:
    """``voxline.text``: words the caller typed instead of saying them (the softphone only)."""

    stream_sid: str
    text: str


@dataclass(frozen=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True)
class Stop:
    stream_sid: str
    call_sid: str


InboundMessage = Connected | Start | Media | Dtmf | Mark | Stop | CallerText


def _obj(data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"'{key}' must be an object")
    return value


def _str(data: dict, key: str, limit: int = MAX_SID_CHARS) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"'{key}' must be a string")
    if len(value) > limit:
        raise ProtocolError(f"'{key}' is longer than {limit} characters")
    return value


def _parameters(params: dict) -> dict[str, str]:
    """``customParameters``: at most 32, each name and value together under 500 characters."""
    if len(params) > MAX_PARAMETERS:
        raise ProtocolError(f"more than {MAX_PARAMETERS} custom parameters")
    out = {str(k): str(v) for k, v in params.items()}
    if any(len(k) + len(v) >= MAX_PARAMETER_CHARS for k, v in out.items()):
        raise ProtocolError(f"a custom parameter's name and value are {MAX_PARAMETER_CHARS} characters or more")
    return out


def shown(value: object, limit: int = 64) -> str:
    """A value from the network as it may appear in a log line: bounded, quoted and escaped, so
    a client cannot write a long or forged line (newlines come out as \\n)."""
    text = str(value)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _int(data: dict, key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    try:
        return int(value)  # type: ignore[arg-type]  # None and other types are refused below  # Twilio sends numbers as strings in media and as integers in mediaFormat
    except (TypeError, ValueError):
        raise ProtocolError(f"'{key}' must be a number") from None


def parse(text: str | bytes) -> InboundMessage:
    # orjson: about 4× faster than json on a media message, and every call sends 50 a second.
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("message is not a JSON object")
    event = data.get("event")
    if event == "media":
        return _media(data)
    return _other(data, event)


_MAX_PAYLOAD_CHARS = MAX_FRAME_BYTES * 4 // 3 + 4


def _media(data: dict) -> Media:
    """The message sent 50 times a second per call: the well-formed case in as few steps as
    possible; anything odd goes through the general path, which says precisely what is wrong."""
    media = data.get("media")
    sid = data.get("streamSid")
    if type(media) is dict and type(sid) is str:
        raw = media.get("payload")
        if type(raw) is str and len(raw) <= _MAX_PAYLOAD_CHARS:
            try:
                return Media(
                    sid,
                    str(media.get("track", "inbound")),
                    int(media.get("chunk", 0)),
                    int(media.get("timestamp", 0)),
                    binascii.a2b_base64(raw, strict_mode=True),
                )
            except (TypeError, ValueError):  # binascii.Error is a ValueError
                pass
    return _media_checked(data)


def _media_checked(data: dict) -> Media:
    media = _obj(data, "media")
    raw = _str(media, "payload")
    if len(raw) > _MAX_PAYLOAD_CHARS:
        raise ProtocolError(f"media payload too large ({len(raw)} base64 characters)")
    try:
        payload = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("media payload is not valid base64") from None
    return Media(
        stream_sid=_str(data, "streamSid"),
        track=str(media.get("track", "inbound")),
        chunk=_int(media, "chunk", 0),
        timestamp=_int(media, "timestamp", 0),
        payload=payload,
    )


def _other(data: dict, event: object) -> InboundMessage:
    if event == "connected":
        return Connected(
            protocol=str(data.get("protocol", ""))[:MAX_NAME_CHARS],
            version=str(data.get("version", ""))[:MAX_NAME_CHARS],
        )
    if event == "start":
        start = _obj(data, "start")
        fmt = start.get("mediaFormat") or {}
        params = start.get("customParameters") or {}
        if not isinstance(fmt, dict) or not isinstance(params, dict):
            raise ProtocolError("'mediaFormat' and 'customParameters' must be objects")
        return Start(
            stream_sid=_str(start, "streamSid"),
            call_sid=_str(start, "callSid"),
            account_sid=str(start.get("accountSid", ""))[:MAX_SID_CHARS],
            tracks=[str(t)[:MAX_NAME_CHARS] for t in list(start.get("tracks", ["inbound"]))[:4]],
            encoding=str(fmt.get("encoding", "audio/x-mulaw"))[:MAX_NAME_CHARS],
            sample_rate=_int(fmt, "sampleRate", 8000),
            channels=_int(fmt, "channels", 1),
            custom_parameters=_parameters(params),
        )
    if event == "mark":
        return Mark(stream_sid=_str(data, "streamSid"), name=_str(_obj(data, "mark"), "name", MAX_NAME_CHARS))
    if event == "dtmf":
        digit = _obj(data, "dtmf").get("digit")
        if not isinstance(digit, str) or digit not in DTMF_DIGITS:
            raise ProtocolError(f"DTMF digit {shown(digit, 8)} is not one of 0-9, *, #, A-D")
        return Dtmf(stream_sid=_str(data, "streamSid"), digit=digit)
    if event == "stop":
        stop = data["stop"] if isinstance(data.get("stop"), dict) else {}
        return Stop(stream_sid=_str(data, "streamSid"), call_sid=str(stop.get("callSid", ""))[:MAX_SID_CHARS])
    if event == "voxline.text":
        text = data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
            raise ProtocolError(f"voxline.text must be 1 to {MAX_TEXT_CHARS} characters of text")
        return CallerText(stream_sid=_str(data, "streamSid"), text=text.strip())
    raise ProtocolError(f"unknown event {shown(event, 32)}")


def _dump(message: dict) -> str:
    return orjson.dumps(message).decode()


def media_message(stream_sid: str, ulaw: bytes) -> str:
    # Built by formatting (base64 needs no JSON escaping; the SID is escaped by orjson): this is
    # the one outbound message sent for every 20 ms of the agent's speech.
    return '{"event":"media","streamSid":%s,"media":{"payload":"%s"}}' % (  # noqa: UP031 (the fastest here)
        orjson.dumps(stream_sid).decode(),
        base64.b64encode(ulaw).decode("ascii"),
    )


def mark_message(stream_sid: str, name: str) -> str:
    return _dump({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return _dump({"event": "clear", "streamSid": stream_sid})
