"""Real webhook receivers on loopback, one aiohttp server per behaviour so that each is its own host
for the dispatcher's per-host limits and circuit breakers. Every request is recorded with what it
was answered."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from bench.soak.journal import Journal, Receipt
from sayso_devstack.processes import free_port

Behaviour = Literal["ok", "fail", "stall", "throttle", "gone"]
BEHAVIOURS: tuple[Behaviour, ...] = ("ok", "fail", "stall", "throttle", "gone")

FAIL_RATIO = 0.35  # answered 500
THROTTLE_RATIO = 0.35  # answered 429 with Retry-After: 1
STALL_RATIO = 0.15  # held past the dispatcher's 10 s timeout
STALL_SECONDS = 12.0


@dataclass
class Receiver:
    behaviour: Behaviour
    journal: Journal
    # ``gone``: answers 200 until this soak time, then 410 Gone to everything.
    gone_after: float = 0.0
    seed: int = 0
    # Behind explicit endpoints (their key is the path) rather than channels' webhook URLs.
    endpoint: bool = False
    port: int = 0
    _runner: web.AppRunner | None = None
    _rng: random.Random = field(default_factory=random.Random)

    def url(self, channel_key: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{channel_key}"

    async def start(self) -> Receiver:
        self._rng.seed(self.seed)
        app = web.Application()
        app.router.add_post("/hook/{channel}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _decide(self) -> int | None:
        """The status to answer, or None to stall."""
        roll = self._rng.random()
        if self.behaviour == "fail" and roll < FAIL_RATIO:
            return 500
        if self.behaviour == "throttle" and roll < THROTTLE_RATIO:
            return 429
        if self.behaviour == "stall" and roll < STALL_RATIO:
            return None
        if self.behaviour == "gone" and self.journal.clock.now() >= self.gone_after:
            return 410
        return 200

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self._decide()
        (self.journal.endpoint_receipts if self.endpoint else self.journal.receipts).append(
            Receipt(
                at=self.journal.clock.now(),
                channel=request.match_info["channel"],
                webhook_id=request.headers.get("webhook-id", ""),
                timestamp=request.headers.get("webhook-timestamp", ""),
                signature=request.headers.get("webhook-signature", ""),
                body=body,
                answered=status,
                behaviour=self.behaviour,
            )
        )
        if status is None:
            # The dispatcher gives up first and retries; this answer goes nowhere.
            await asyncio.sleep(STALL_SECONDS)
            return web.Response(text="late")
        headers = {"Retry-After": "1"} if status == 429 else None
        return web.Response(status=status, text="soak", headers=headers)
