"""Everything the soak observes, on one clock: seconds since the traffic started (monotonic)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

# What the edge routes where (deploy/Caddyfile): the long-poll and SSE go to realtime.
REALTIME_ROUTES = ("GET /api/v1/reviews/{id}/wait", "GET /api/v1/events")

WindowKind = Literal["kill", "broker", "mongo"]


@dataclass
class Clock:
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.t0


@dataclass(frozen=True)
class Call:
    """One HTTP request a simulated client sent through the edge."""

    at: float
    took: float
    route: str  # "POST /api/v1/messages": method and templated path
    status: int | None  # None: no HTTP answer at all (reset, refused, timed out)
    retry_after: str | None = None
    error: str | None = None

    @property
    def service(self) -> str:
        return "realtime" if self.route in REALTIME_ROUTES else "api"

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class Window:
    """A declared outage: a replica killed until it answers /healthz again, the broker down until
    it listens again, MongoDB down until it is primary again."""

    kind: WindowKind
    target: str  # "api-1", "tansu", "mongod"
    service: str  # the Sayso service killed, or "kafka" / "mongodb"
    start: float
    end: float | None = None


@dataclass(frozen=True)
class Poll:
    review_id: str
    at: float
    took: float
    timeout_ms: int
    status: int | None
    outcome: str | None  # "pending" | "completed" | "expired" from a 200 answer


@dataclass(frozen=True)
class Answer:
    """One respond call of a simulated human (``tab`` tells concurrent tabs apart)."""

    review_id: str
    tab: int
    at: float
    status: int | None
    response: dict[str, Any]


Plan = Literal["answer", "tabs", "race", "ignore"]


@dataclass
class Review:
    id: str
    owner: int
    channel: str
    type: str
    plan: Plan
    expires_in: int
    created_at: float
    # What the agent's long-poll said last: the outcome as the agent learned it.
    seen_status: str | None = None
    seen_response: Any = None


@dataclass(frozen=True)
class Receipt:
    """One webhook request a receiver got."""

    at: float
    channel: str  # the receiver path, one per agent
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    answered: int | None  # None: stalled past the dispatcher's timeout
    behaviour: str = "ok"  # the receiver's: "ok" receivers are the healthy ones


@dataclass
class LiveLog:
    """What one Socket.IO or SSE client saw: each connection, and every event in arrival order."""

    name: str
    kind: Literal["socket", "sse"]
    owner: int
    channels: list[str] | None  # None: every channel of the owner
    connects: list[float] = field(default_factory=list)
    failed_connects: int = 0
    received: list[tuple[str, str, float]] = field(default_factory=list)  # (event id, name, at)
    errors: list[str] = field(default_factory=list)

    @property
    def last_event_id(self) -> str | None:
        return self.received[-1][0] if self.received else None


@dataclass
class Journal:
    clock: Clock = field(default_factory=Clock)
    calls: list[Call] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    reviews: dict[str, Review] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    # What the endpoints' receivers got (``Receipt.channel`` is the endpoint's key).
    endpoint_receipts: list[Receipt] = field(default_factory=list)
    live: list[LiveLog] = field(default_factory=list)
    # Replicas restarted by the devstack supervisor, and the ones the chaos loop killed.
    restarts: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    # How late this process's own event loop ran, sampled: (at, seconds late). The clients time
    # every call, so their own lateness is part of what they measure.
    loop_lag: list[tuple[float, float]] = field(default_factory=list)

    def lag_during(self, start: float, end: float) -> float:
        return max((lag for at, lag in self.loop_lag if start <= at <= end + 0.5), default=0.0)

    async def watch_loop_lag(self, stop: asyncio.Event, every: float = 0.25) -> None:
        while not stop.is_set():
            before = self.clock.now()
            await asyncio.sleep(every)
            self.loop_lag.append((self.clock.now(), self.clock.now() - before - every))

    async def call(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        route: str,
        *,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send one request and record it, whatever happens; None when no HTTP answer came."""
        started = self.clock.now()
        try:
            resp = await http.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as exc:
            self.calls.append(
                Call(started, self.clock.now() - started, route, None, error=type(exc).__name__)
            )
            return None
        self.calls.append(
            Call(
                started, self.clock.now() - started, route, resp.status_code, resp.headers.get("retry-after")
            )
        )
        return resp
