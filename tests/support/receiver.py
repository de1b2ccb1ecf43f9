"""A real HTTP receiver on a loopback port: records every request and answers as told.

Tests point webhooks at it and assert on what arrived (headers, raw body, timing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sayso_devstack.processes import free_port


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Handler = Callable[[web.Request, Received], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    # path -> handler; unknown paths answer 200 {"ok": true}.
    routes: dict[str, Handler] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return f"{self.base}{path}"

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(
            path=request.path,
            method=request.method,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
            at=time.monotonic(),
        )
        self.requests.append(got)
        async with self._arrived:
            self._arrived.notify_all()
        handler = self.routes.get(request.path)
        if handler is not None:
            return await handler(request, got)
        return web.json_response({"ok": True})

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        """Wait until ``count`` requests reached ``path``; fail with what did arrive."""

        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.at(path)) >= count)

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} request(s) at {path} within {timeout}s, got {len(self.at(path))}; "
                f"all paths seen: {sorted({r.path for r in self.requests})}"
            ) from None
        return self.at(path)
