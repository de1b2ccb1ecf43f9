"""Clients that stay connected for the whole soak: Socket.IO on ``/ws`` and SSE on
``/api/v1/events``, through the edge. Each reconnects by itself when its connection drops (a
realtime replica killed under it) and resumes from the last event it received, as the README tells
clients to; each keeps every event it got, in order, for the end-of-run comparison."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

from bench.soak.journal import Call, Journal, LiveLog

RECONNECT_DELAY = 0.3
RECONNECT_DELAY_MAX = 3.0
# A stream is quiet for at most the server's heartbeat (15 s); past this it is considered dead.
SSE_READ_TIMEOUT = 40.0
ROUTE = "GET /api/v1/events"


@dataclass
class SocketClient:
    journal: Journal
    log: LiveLog
    url: str
    credential: dict[str, str]  # {"apiKey": …} or {"token": …}
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def _auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = dict(self.credential)
        if self.log.channels is not None:
            auth["channels"] = self.log.channels
        if self.log.last_event_id is not None:
            auth["lastEventId"] = self.log.last_event_id
        return auth

    async def run(self, stop: asyncio.Event) -> None:
        # Reconnection is ours, not the library's: a namespace the server closes (a socket that fell
        # behind) is not reconnected by python-socketio, and each connect must carry the latest id.
        client = socketio.AsyncClient(reconnection=False)
        dropped = asyncio.Event()

        async def on_event(event: str, data: Any) -> None:
            event_id = data.get("eventId") if isinstance(data, dict) else None
            if isinstance(event_id, str):
                self.log.received.append((event_id, event, self.journal.clock.now()))
            else:
                self.log.errors.append(f"{event} without eventId")

        async def on_disconnect(*_: Any) -> None:
            dropped.set()

        client.on("*", on_event, namespace="/ws")
        client.on("disconnect", on_disconnect, namespace="/ws")
        delay = RECONNECT_DELAY
        try:
            while not stop.is_set():
                dropped.clear()
                try:
                    await client.connect(
                        self.url,
                        namespaces=["/ws"],
                        transports=["websocket"],
                        auth=self._auth(),
                        wait_timeout=10,
                    )
                except (socketio.exceptions.ConnectionError, ValueError):
                    self.log.failed_connects += 1
                    await _pause(stop, delay)
                    delay = min(delay * 2, RECONNECT_DELAY_MAX)
                    continue
                delay = RECONNECT_DELAY
                self.log.connects.append(self.journal.clock.now())
                self.connected.set()
                await _first(stop.wait(), dropped.wait())
                if not stop.is_set():
                    with contextlib.suppress(Exception):
                        await client.disconnect()  # tidy up a half-closed session before reconnecting
                    await _pause(stop, RECONNECT_DELAY)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()


@dataclass
class SseClient:
    journal: Journal
    log: LiveLog
    http: httpx.AsyncClient
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    # The frame being read: its id and event name so far.
    _id: str | None = None
    _name: str = "message"

    async def run(self, stop: asyncio.Event) -> None:
        delay = RECONNECT_DELAY
        while not stop.is_set():
            if await _first(stop.wait(), self._session()):
                delay = RECONNECT_DELAY
            else:
                self.log.failed_connects += 1
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
            await _pause(stop, delay)

    async def _session(self) -> bool:
        """One connection, until it ends; whether it opened."""
        headers = {"Last-Event-ID": last} if (last := self.log.last_event_id) else {}
        params = {"channel": self.log.channels[0]} if self.log.channels else {}
        clock = self.journal.clock
        started = clock.now()
        answered = opened = False
        self._id, self._name = None, "message"
        try:
            async with self.http.stream(
                "GET",
                "/api/v1/events",
                params=params,
                headers=headers,
                timeout=httpx.Timeout(10.0, read=SSE_READ_TIMEOUT),
            ) as resp:
                answered = True
                self.journal.calls.append(
                    Call(
                        started,
                        clock.now() - started,
                        ROUTE,
                        resp.status_code,
                        resp.headers.get("retry-after"),
                    )
                )
                if resp.status_code != 200:
                    await resp.aread()
                    return False
                async for line in resp.aiter_lines():
                    if not opened:
                        # The server subscribes the stream to live events before its first line.
                        opened = True
                        self.log.connects.append(clock.now())
                        self.connected.set()
                    self._line(line)
        except httpx.TransportError as exc:
            # After the answer this is the stream being cut (its replica killed): not a failed call.
            if not answered:
                self.journal.calls.append(
                    Call(started, clock.now() - started, ROUTE, None, error=type(exc).__name__)
                )
        return opened

    def _line(self, line: str) -> None:
        if line.startswith("id:"):
            self._id = line[3:].strip()
        elif line.startswith("event:"):
            self._name = line[6:].strip()
        elif line == "":
            if self._id is not None:
                self.log.received.append((self._id, self._name, self.journal.clock.now()))
            elif self._name == "error":
                self.log.errors.append("stream ended with an error frame")
            self._id, self._name = None, "message"


async def _first(*aws: Any) -> Any:
    """Run until the first of ``aws`` finishes; cancel the others; that one's result."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
