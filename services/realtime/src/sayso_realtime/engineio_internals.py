"""Every use of python-socketio / python-engineio beyond their public API, in one place (issue #28
item 5). Each function names what it relies on; ``tests/test_library_contracts.py`` fails if the
pinned versions (exact pins in services/realtime/pyproject.toml) stop behaving so.

The fan-out puts one encoded packet on each client's Engine.IO send queue directly:
``AsyncServer.emit`` would create and await one task per client, which was most of the fan-out
time with a thousand clients on a channel. That relies on:

- ``AsyncServer.eio.sockets``: Engine.IO session id -> its socket;
- a socket's ``queue`` (an ``asyncio.Queue`` of packets) drained in order by the socket's own
  writer (WebSocket) or by the client's next poll (long-polling), ``None`` on it meaning "send what
  is before me, then hang up", and ``task_done`` called for each packet sent;
- a socket's ``closed`` flag and ``close(wait=, abort=)``;
- ``AsyncServer.packet_class``: the Socket.IO packet encoder the server itself uses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import engineio
import socketio

# An Engine.IO socket (engineio.async_socket.AsyncSocket): untyped in the library.
EngineSocket = Any


def engine_socket(server: socketio.AsyncServer, eio_sid: str | None) -> EngineSocket | None:
    """The Engine.IO socket of session ``eio_sid`` while it is open; None otherwise."""
    if eio_sid is None:
        return None
    sock = server.eio.sockets.get(eio_sid)
    return None if sock is None or sock.closed else sock


def engine_sockets(server: socketio.AsyncServer) -> dict[str, EngineSocket]:
    """Every Engine.IO session of ``server`` by id (read once per fan-out: the hot path)."""
    sockets: dict[str, EngineSocket] = server.eio.sockets
    return sockets


def event_packet(server: socketio.AsyncServer, namespace: str, data: list[Any]) -> engineio.packet.Packet:
    """One Socket.IO event, encoded once, ready to queue for any number of sockets."""
    encoded = server.packet_class(socketio.packet.EVENT, namespace=namespace, data=data).encode()
    return engineio.packet.Packet(engineio.packet.MESSAGE, encoded)


def queued(sock: EngineSocket) -> int:
    """Packets waiting on ``sock``'s send queue."""
    size: int = sock.queue.qsize()
    return size


def enqueue(sock: EngineSocket, packet: engineio.packet.Packet) -> None:
    sock.queue.put_nowait(packet)


def discard_queued(sock: EngineSocket) -> None:
    """Drop what waits on ``sock``'s send queue (marked sent, so a drain does not wait for it)."""
    while not sock.queue.empty():
        sock.queue.get_nowait()
        sock.queue.task_done()


def hang_up_after_queued(sock: EngineSocket) -> None:
    """``sock``'s writer sends what is queued, then closes the WebSocket."""
    sock.queue.put_nowait(None)


async def drained(sock: EngineSocket, timeout: float) -> None:
    """Until every queued packet was sent (a polling client fetched it), at most ``timeout``."""
    try:
        await asyncio.wait_for(sock.queue.join(), timeout)
    except TimeoutError:
        return


async def abort(sock: EngineSocket) -> None:
    """Close ``sock`` at once, without a CLOSE packet: its session's next request is refused."""
    await sock.close(wait=False, abort=True)
