"""The cost of receiving one Media Streams message, from the socket's bytes to the app's hands.

Both ways a message can reach a ``MediaStream`` are timed on a real uvloop event loop with a real
ASGI app (Starlette), the server protocol driven by an in-memory transport:

- ``voxline.direct``: the frame is cut in ``data_received`` and handed to the attached receiver;
- the ASGI reference (uvicorn's own protocol): the ``websockets`` state machine parses it, it is
  queued, reading paused, the app's task woken, and Starlette's ``receive`` returns it.

Each message costs one loop iteration in both (the driver yields after each, as the socket's read
callback would), so the difference is what the ASGI route adds per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from voxline.config import Settings
from voxline.server import uvicorn_config
from voxline.telephony.direct_socket import DIRECT, DirectWebSocketProtocol

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _Transport(asyncio.Transport):
    """Swallows writes; enough of a transport for a protocol that never touches a socket."""

    def write(self, data) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name in ("sockname", "peername") else default


def masked_frame(payload: bytes, first_byte: int = 0x81) -> bytes:
    """A client frame (FIN, text by default), as a browser or Twilio sends it."""
    key = os.urandom(4)
    n = len(payload)
    head = bytes((first_byte, 0x80 | n)) if n < 126 else bytes((first_byte, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _time_receive(direct: bool, frames: list[bytes]) -> float:
    """Seconds per message through one protocol instance."""
    received = 0
    ready, stop = asyncio.Event(), asyncio.Event()

    class Receiver:
        def websocket_text(self, text: str) -> None:
            nonlocal received
            received += 1

        def websocket_bytes(self, data: bytes) -> None: ...

        def websocket_closed(self) -> None: ...

    async def endpoint(ws: WebSocket) -> None:
        nonlocal received
        await ws.accept()
        if direct:
            ws.scope["extensions"][DIRECT]["attach"](Receiver())
            ready.set()
            await stop.wait()
            return
        ready.set()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()
                received += 1

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    config = uvicorn_config(app, Settings(), "127.0.0.1", 0)
    config.load()
    cls = DirectWebSocketProtocol if direct else WebSocketsSansIOProtocol
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(_Transport())
    protocol.data_received(UPGRADE)
    await ready.wait()
    for frame in frames[:200]:  # warm up
        protocol.data_received(frame)
        await asyncio.sleep(0)
    start, before = time.perf_counter(), received
    for frame in frames:
        protocol.data_received(frame)
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    assert received - before == len(frames), "a message was not delivered"
    stop.set()
    protocol.data_received(masked_frame((1000).to_bytes(2, "big"), 0x88))  # the caller hangs up
    await asyncio.gather(*protocol.tasks)
    return elapsed / len(frames)


def websocket_receive_costs(texts: list[str], repeat: int) -> dict[str, float]:
    """µs per message, best of ``repeat``: direct, and the ASGI reference."""
    frames = [masked_frame(t.encode()) for t in texts]
    best = {True: float("inf"), False: float("inf")}
    for _ in range(repeat):
        for direct in (True, False):
            best[direct] = min(best[direct], uvloop.run(_time_receive(direct, frames)))
    # Subtract the driver's own cost per message (an empty loop iteration), the same in both.
    idle = min(uvloop.run(_idle(len(frames))) for _ in range(repeat))
    return {
        "receive a media message (voxline.direct)": (best[True] - idle) * 1e6,
        "  reference: uvicorn websockets-sansio + Starlette receive": (best[False] - idle) * 1e6,
    }


async def _idle(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    return (time.perf_counter() - start) / n
