"""The ``voxline.direct`` WebSocket protocol, frame by frame, against a real uvicorn on loopback.

A raw TCP client writes hand-made RFC 6455 frames, split and joined at awkward byte boundaries,
and mixes in what the direct path must leave to the ``websockets`` state machine (pings,
fragmented messages, oversized, unmasked and invalid frames). The app attaches a receiver that
records what arrives and echoes each text message back with ``send_text``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import threading
import time

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from voxline.config import Settings
from voxline.server import uvicorn_config
from voxline.telephony.direct_socket import DIRECT


class Recorder:
    def __init__(self, send_text) -> None:
        self.send_text = send_text
        self.texts: list[str] = []
        self.binaries: list[bytes] = []
        self.closed = asyncio.Event()

    def websocket_text(self, text: str) -> None:
        self.texts.append(text)
        if text == "boom":
            raise RuntimeError("receiver bug")
        asyncio.get_running_loop().create_task(self.send_text("echo:" + text))

    def websocket_bytes(self, data: bytes) -> None:
        self.binaries.append(data)

    def websocket_closed(self) -> None:
        self.closed.set()


class Server:
    def __init__(self, max_message_bytes: int = 4096) -> None:
        self.recorders: list[Recorder] = []
        self.offered: list[bool] = []

        async def endpoint(ws: WebSocket) -> None:
            direct = ws.scope["extensions"].get(DIRECT)
            self.offered.append(direct is not None)
            await ws.accept()
            recorder = Recorder(direct["send_text"])
            self.recorders.append(recorder)
            direct["attach"](recorder)
            await recorder.closed.wait()

        app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        settings = Settings(max_message_bytes=max_message_bytes)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, data: bytes, piece: int | None = None) -> None:
        if piece is None:
            self.sock.sendall(data)
            return
        for at in range(0, len(data), piece):
            self.sock.sendall(data[at : at + piece])
            time.sleep(0.001)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (unmasked, unfragmented)."""
        first, second = self._read(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        return first & 0x0F, self._read(n)

    def close_code(self) -> int:
        opcode, payload = self.frame()
        while opcode != 0x8:
            opcode, payload = self.frame()
        return struct.unpack("!H", payload[:2])[0]


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_messages_arrive_whole_in_order_however_the_bytes_are_split() -> None:
    texts = [f'{{"event":"media","n":{i},"pad":"{"x" * (i * 37 % 300)}"}}' for i in range(40)]
    texts.append("ü" * 200)  # multi-byte UTF-8, a 16-bit length
    frames = b"".join(client_frame(0x1, t.encode()) for t in texts)
    with Server() as server:
        client = Client(server.port)
        client.send(frames[:700], piece=1)  # a byte at a time
        client.send(frames[700:1900], piece=97)  # frame boundaries anywhere
        client.send(frames[1900:])  # many frames in one write
        wait_for(lambda: len(server.recorders[0].texts) == len(texts))
        assert server.offered == [True]
        assert server.recorders[0].texts == texts
        echoes = [client.frame() for _ in texts]
        assert echoes == [(0x1, ("echo:" + t).encode()) for t in texts]


def test_control_frames_and_fragments_go_through_the_state_machine() -> None:
    with Server() as server:
        client = Client(server.port)
        client.send(client_frame(0x1, b"before"))
        client.send(client_frame(0x9, b"are you there"))  # ping
        client.send(
            client_frame(0x1, b"frag", fin=False) + client_frame(0x0, b"ment", fin=False) + client_frame(0x0, b"ed")
        )
        client.send(client_frame(0x2, b"\x00\x01\x02"))
        client.send(client_frame(0x1, b"after"))
        wait_for(lambda: len(server.recorders[0].texts) == 3)
        recorder = server.recorders[0]
        assert recorder.texts == ["before", "fragmented", "after"]
        assert recorder.binaries == [b"\x00\x01\x02"]
        got = [client.frame() for _ in range(4)]
        assert (0xA, b"are you there") in got  # the pong
        assert [p for op, p in got if op == 0x1] == [b"echo:before", b"echo:fragmented", b"echo:after"]
        client.send(client_frame(0x8, struct.pack("!H", 1000)))  # the caller hangs up
        assert client.close_code() == 1000
        wait_for(recorder.closed.is_set)


@pytest.mark.parametrize(
    "frame, code",
    [
        (client_frame(0x1, b"x" * 5000), 1009),  # over ws_max_size
        (client_frame(0x1, b"unmasked", masked=False), 1002),
        (client_frame(0x1, b"\xff\xfe not UTF-8"), 1007),
        (client_frame(0x1, b"reserved bit", rsv=0x40), 1002),
        (client_frame(0x1, b"boom"), 1011),  # the receiver raised
    ],
)
def test_bad_frames_close_the_connection_with_the_right_code(frame: bytes, code: int) -> None:
    with Server() as server:
        client = Client(server.port)
        client.send(client_frame(0x1, b"fine"))
        wait_for(lambda: server.recorders and server.recorders[0].texts == ["fine"])
        client.send(frame)
        assert client.close_code() == code
        wait_for(server.recorders[0].closed.is_set)
        assert server.recorders[0].texts[0] == "fine"
        other = Client(server.port)  # the server goes on
        other.send(client_frame(0x1, b"next"))
        assert other.frame() == (0x1, b"echo:next")


def test_a_dropped_connection_reaches_the_receiver() -> None:
    with Server() as server:
        client = Client(server.port)
        client.send(client_frame(0x1, b"hello")[:5])  # half a frame, then gone
        wait_for(lambda: server.recorders)
        client.sock.close()
        wait_for(server.recorders[0].closed.is_set)
        assert server.recorders[0].texts == []


def reference_messages(stream: bytes) -> list[tuple[str, object]]:
    """What the ``websockets`` state machine makes of the same client bytes: whole messages, in order."""
    from websockets.frames import Opcode
    from websockets.protocol import SERVER, Protocol, State

    protocol = Protocol(SERVER, state=State.OPEN, max_size=None)
    protocol.receive_data(stream)
    messages: list[tuple[str, object]] = []
    parts: list[bytes] = []
    kind = ""
    for frame in protocol.events_received():
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            kind, parts = ("text" if frame.opcode is Opcode.TEXT else "binary"), [frame.data]
        elif frame.opcode is Opcode.CONT:
            parts.append(frame.data)
        else:
            continue  # control frames are answered, not delivered
        if frame.fin:
            data = b"".join(parts)
            messages.append((kind, data.decode() if kind == "text" else data))
    return messages


def header_length(frame: bytes) -> int:
    """Bytes before a client frame's payload: 2, the extended length, the mask."""
    length = frame[1] & 0x7F
    return 2 + {126: 2, 127: 8}.get(length, 0) + (4 if frame[1] & 0x80 else 0)


@st.composite
def frame_sequences(draw) -> list[bytes]:
    """Data frames of every length class, pings between them and between a message's fragments."""
    frames: list[bytes] = []
    for index in range(draw(st.integers(1, 12))):
        size = draw(st.sampled_from([0, 5, 125, 126, 300, 1000]))
        payload = f"{index}:".encode() + b"x" * size
        if draw(st.integers(0, 3)) == 0:
            frames.append(client_frame(0x9, b"p" * draw(st.integers(0, 20))))  # a ping first
        if draw(st.integers(0, 4)) == 0:  # a fragmented message, a ping between its pieces
            cut = len(payload) // 2
            frames += [client_frame(0x1, payload[:cut], fin=False), client_frame(0x9, b"mid")]
            frames.append(client_frame(0x0, payload[cut:]))
        else:
            frames.append(client_frame(draw(st.sampled_from([0x1, 0x2])), payload))
    return frames


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=frame_sequences(), data=st.data())
def test_the_direct_path_delivers_what_the_websockets_parser_does_however_the_bytes_arrive(
    direct_server, frames: list[bytes], data
) -> None:
    """Differential: the same bytes, split at random points into separate TCP segments (so a
    control frame, then a data frame's header and mask, then its payload can arrive apart),
    give the same messages on the direct path as in the ``websockets`` reference."""
    stream = b"".join(frames)
    # Random points, and the awkward ones: right after a frame's header and mask (its payload in the
    # next segment), which is where a parser that lost track of frames shows it.
    starts = [sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    after_headers = [start + header_length(frame) for start, frame in zip(starts, frames)]
    points = st.integers(1, max(1, len(stream) - 1)) | st.sampled_from(after_headers + starts[1:] or [1])
    cuts = sorted({c for c in data.draw(st.lists(points, max_size=12)) if 0 < c < len(stream)})
    expected = reference_messages(stream)
    recorder_index = len(direct_server.recorders)
    client = Client(direct_server.port)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait_for(lambda: len(direct_server.recorders) > recorder_index)
    recorder = direct_server.recorders[recorder_index]
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        client.sock.sendall(stream[start:end])
        time.sleep(0.002)  # its own segment, read on its own
    wait_for(lambda: len(recorder.texts) + len(recorder.binaries) >= len(expected))
    time.sleep(0.01)
    client.sock.close()
    got_texts = [m for kind, m in expected if kind == "text"]
    got_binaries = [m for kind, m in expected if kind == "binary"]
    assert recorder.texts == got_texts
    assert recorder.binaries == got_binaries


@pytest.fixture(scope="module")
def direct_server():
    with Server(max_message_bytes=1 << 20) as server:
        yield server
