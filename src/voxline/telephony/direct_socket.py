"""uvicorn's WebSocket protocol with one ASGI extension: Media Streams messages without the queue.

A call sends 50 Media Streams messages a second. Through uvicorn's ``websockets-sansio`` protocol
each one is parsed by the ``websockets`` state machine (a generator and an ``Enum`` per frame),
put on a queue, reading paused and resumed (two event-loop registrations), and handed to the app
by a task wake-up through Starlette's receive wrapper: several times what Voxline does with the
frame itself, and what limits how many calls a core serves.

``DirectWebSocketProtocol`` is that same protocol plus the extension ``voxline.direct`` in the
scope. An app that finds it may, after accepting, *attach* a :class:`DirectReceiver`; from then on

- each complete message goes to the receiver synchronously from ``data_received``;
- unfragmented masked text and binary frames (everything Twilio and the softphone send) are cut
  and unmasked here, with ``websockets``' C unmasking, instead of by the state machine;
- ``send_text`` writes a text frame straight to the transport, still waiting while the transport
  is paused (the peer is not reading); ``abort`` drops a connection whose peer stopped reading.

Everything else (the handshake, control frames, fragmented messages, frames over the size limit,
unmasked or otherwise malformed frames, closing) goes through the ``websockets`` state machine
exactly as before, so the protocol's rules are enforced by the same code. An app that does not
attach, or runs under another server, uses the ordinary ASGI receive loop.
"""

from __future__ import annotations

import logging
import struct
from typing import Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, apply_mask
from websockets.protocol import State

log = logging.getLogger(__name__)

DIRECT = "voxline.direct"  # the scope extension's name

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_MASKED = 0x80


class DirectReceiver(Protocol):
    """What an app attaches. Called on the event loop, from ``data_received``: never blocks."""

    def websocket_text(self, text: str) -> None: ...

    def websocket_bytes(self, data: bytes) -> None: ...

    def websocket_closed(self) -> None:
        """The connection is gone (closed by either side, or lost). Called once."""


def frame_header(first_byte: int, length: int) -> bytes:
    """An unmasked (server-to-client) frame header, RFC 6455 §5.2."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first_byte, 126, length)
    return struct.pack("!BBQ", first_byte, 127, length)


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's ``ws`` protocol class (``voxline.server.uvicorn_config`` does)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._receiver: DirectReceiver | None = None
        self._cutting = False  # frames are cut here (the state machine holds no partial frame)
        self._partial = bytearray()  # the start of a frame not yet complete
        self._max_size = self.config.ws_max_size

    # The extension

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the upgrade was acceptable: an ASGI app will run
            scope["extensions"][DIRECT] = {"attach": self.attach, "send_text": self.send_text, "abort": self.abort}

    def attach(self, receiver: DirectReceiver) -> None:
        """From now on messages go to ``receiver``; any already queued go first, in order."""
        self._receiver = receiver
        while not self.queue.empty():
            message = self.queue.get_nowait()
            if message["type"] == "websocket.receive":
                self._deliver(message.get("text"), message.get("bytes"))
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.disconnected:
            receiver.websocket_closed()
        self._maybe_cut()

    def abort(self) -> None:
        """Drop the connection now, unsent data and all (a peer that stopped reading)."""
        self.transport.abort()

    async def send_text(self, text: str) -> None:
        """Write one text frame; a closed or closing connection drops it (the caller is gone)."""
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected or self.close_sent or self.transport.is_closing():
            return
        payload = text.encode()
        self.transport.write(frame_header(_FIN_TEXT, len(payload)) + payload)

    # Receiving

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        scope = getattr(self, "scope", None)
        if scope is not None:  # its functions point back at this protocol: no cycle left behind
            scope["extensions"].pop(DIRECT, None)
        if self._receiver is not None:
            receiver, self._receiver = self._receiver, None
            receiver.websocket_closed()

    def data_received(self, data: bytes) -> None:
        if not self._cutting:
            super().data_received(data)
            self._maybe_cut()
            return
        if self._partial:  # appended in place: a frame trickling in byte by byte costs linear time
            self._partial += data
            buffer: bytes | bytearray = self._partial
        else:
            buffer = data  # the usual case: whole frames, cut straight from what was read
        at = self._cut(buffer)
        if not self._cutting:
            return
        if buffer is self._partial:
            del self._partial[:at]
        elif at < len(buffer):
            self._partial = bytearray(buffer[at:])

    def _cut(self, buffer: bytes | bytearray) -> int:
        """Deliver each complete plain data frame; returns how many bytes were used."""
        end = len(buffer)
        at = 0
        while end - at >= 2 and self._cutting:
            first, second = buffer[at], buffer[at + 1]
            length = second & 0x7F
            start = at + 2
            if length == 126:
                if end - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            if (
                (first != _FIN_TEXT and first != _FIN_BINARY)
                or not second & _MASKED
                or length > self._max_size
                or self.conn.expect_continuation_frame
            ):
                # Not a plain data frame (control, fragment, oversized, unmasked, reserved bits):
                # the state machine takes it and everything after it.
                self._cutting = False
                self._partial = bytearray()
                super().data_received(bytes(buffer[at:]))
                self._maybe_cut()
                return end
            payload_at = start + 4
            frame_end = payload_at + length
            if frame_end > end:
                break
            payload = apply_mask(buffer[payload_at:frame_end], buffer[start:payload_at])
            at = frame_end
            if first == _FIN_TEXT:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                    return end
                self._deliver(text, None)
            else:
                self._deliver(None, bytes(payload))
        return at

    def send_receive_event_to_app(self) -> None:
        if self._receiver is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
            self._deliver(text, None)
        else:
            self._deliver(None, bytes(data))

    def _deliver(self, text: str | None, data: bytes | None) -> None:
        receiver = self._receiver
        if receiver is None or self.close_sent:
            return  # past the app's close: dropped, as uvicorn does
        try:
            if text is not None:
                receiver.websocket_text(text)
            else:
                receiver.websocket_bytes(data or b"")
        except Exception:
            log.exception("WebSocket receiver failed; closing the connection")
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")

    def _maybe_cut(self) -> None:
        """Cut frames here once attached, open, and the state machine holds no partial frame."""
        self._cutting = (
            self._receiver is not None
            and self.conn.state is State.OPEN
            and not self.close_sent
            and self.conn.parser_exc is None
            and self._parser_between_frames()
        )

    def _parser_between_frames(self) -> bool:
        """Whether the ``websockets`` parser waits for the first byte of a frame. An empty read
        buffer is not enough: the parser may have taken a frame's header and mask and be waiting
        for its payload, which must then go to it, not be cut here as a new frame. The parser is
        a generator: between frames it is suspended in ``StreamReader.at_eof``, mid-frame in
        ``read_exact``. (If a future ``websockets`` parses otherwise, this says no, and frames
        simply stay with the state machine.)"""
        if self.conn.reader.buffer:
            return False
        generator = getattr(self.conn, "parser", None)
        while getattr(generator, "gi_yieldfrom", None) is not None:
            generator = generator.gi_yieldfrom  # type: ignore[union-attr]
        code = getattr(generator, "gi_code", None)
        return code is not None and code.co_name == "at_eof"

    def _fail(self, code: CloseCode, reason: str) -> None:
        self._cutting = False
        self._partial = bytearray()
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
