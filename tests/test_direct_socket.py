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
