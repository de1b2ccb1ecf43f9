"""Clients for the realtime gateway as an agent or dashboard would use them: the standard
python-socketio client and an SSE reader on httpx-sse. Each records what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio
from httpx_sse import aconnect_sse

NAMESPACE = "/ws"
EVENT_NAMES = ("message:created", "review:responded", "review:expired", "agent:status", "delivery:status")


@dataclass
class Received:
    name: str
    payload: dict[str, Any]
    at: float = field(default_factory=time.perf_counter)


class Inbox:
    """What a client received, in order, with a way to wait for a particular item."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._changed = asyncio.Condition()

    async def add(self, item: Received) -> None:
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait_for(
        self, match: Callable[[Received], bool], timeout: float = 20.0, what: str = ""
    ) -> Received:
        async def find() -> Received:
            async with self._changed:
                while True:
                    for item in self.items:
                        if match(item):
                            return item
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            names = [(i.name, i.payload.get("eventId")) for i in self.items]
            raise AssertionError(f"not received within {timeout}s: {what}; got {names}") from None

    def event_ids(self) -> list[str]:
        return [str(i.payload["eventId"]) for i in self.items]


@contextlib.asynccontextmanager
async def socket_client(
    url: str, auth: dict[str, Any] | None, transports: list[str] | None = None
) -> AsyncIterator[tuple[socketio.AsyncClient, Inbox]]:
    """A connected client on ``/ws``; raises ``socketio.exceptions.ConnectionError`` if refused."""
    client = socketio.AsyncClient(reconnection=False)
    inbox = Inbox()

    async def catch_all(event: str, data: Any) -> None:
        await inbox.add(Received(event, data))

    refusals: list[Any] = []

    async def connect_error(data: Any) -> None:
        refusals.append(data)

    client.on("*", catch_all, namespace=NAMESPACE)
    client.on("connect_error", connect_error, namespace=NAMESPACE)
    try:
        try:
            await client.connect(
                url,
                namespaces=[NAMESPACE],
                auth=auth,
                transports=transports or ["websocket"],
                wait_timeout=15,
            )
        except socketio.exceptions.ConnectionError as exc:
            # Carry the server's reason ({"message", "data": {"code"}}) into the error.
            raise socketio.exceptions.ConnectionError(f"{exc}: {refusals}") from None
        yield client, inbox
    finally:
        await client.disconnect()
        # The engine.io client keeps its aiohttp session open after a refused connect.
        http = getattr(client.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()


@contextlib.asynccontextmanager
async def sse_stream(
    base_url: str, headers: dict[str, str], params: dict[str, str] | None = None
) -> AsyncIterator[Inbox]:
    """An open SSE stream on ``/api/v1/events``, read in the background into an inbox; every
    event's ``id:`` line is checked against the payload's ``eventId``."""
    inbox = Inbox()
    opened = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=120)) as client,
            aconnect_sse(client, "GET", "/api/v1/events", headers=headers, params=params) as source,
        ):
            if not opened.done():
                opened.set_result(source.response)
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue  # the opening "retry:" block carries no event
                data = json.loads(sse.data)
                assert sse.id == data["eventId"], (sse.id, data)
                await inbox.add(Received(sse.event, data))

    def ended(task: asyncio.Task[None]) -> None:
        if opened.done():
            return
        if task.cancelled():
            opened.cancel()
        else:
            opened.set_exception(task.exception() or EOFError("stream ended before it opened"))

    task = asyncio.create_task(read())
    task.add_done_callback(ended)
    try:
        response = await asyncio.wait_for(opened, 15)
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        yield inbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
