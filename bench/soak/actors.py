"""Simulated agents and humans, speaking the public API through the edge as real ones do.

Agents (API keys) post messages with reviews of every type, each with a ``clientId`` so a retry
after a lost answer creates nothing twice, ping their status, and wait for each answer by
long-poll. Humans (a session JWT, as the inbox logs in) answer: most after a moment's thought,
some from three tabs at once, some right at the deadline, some never (the review expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.soak.journal import Answer, Journal, Plan, Poll, Review
from bench.soak.receivers import Behaviour

REVIEW_TYPES = ("approval", "selection", "form", "text-input", "freeform")
PLANS: tuple[tuple[Plan, float], ...] = (("answer", 0.55), ("tabs", 0.15), ("race", 0.15), ("ignore", 0.15))
TABS = 3
# Deadlines: long enough that an answered review is answered well before, short for the others.
EXPIRES_IN: dict[Plan, int] = {"answer": 120, "tabs": 120, "race": 3, "ignore": 5}
# The agent's long-poll timeouts (ms), mixed so that some run out while others are woken.
POLL_TIMEOUTS_MS = (2000, 5000, 10000, 25000)
# Per agent, as `webhookRetrySchedule`: the dispatcher's default starts at 5 s then 5 min, far
# beyond a soak; these eight retries span ~45 s, enough to outlast every injected fault.
RETRY_SCHEDULE = [1, 2, 3, 5, 8, 8, 8, 10]
# How long a client keeps retrying one call through 5xx and lost connections before giving up.
PERSIST_SECONDS = 60.0
STATUS_PING_SECONDS = 8.0


def review_payload(kind: str, n: int) -> dict[str, Any]:
    """A valid payload of each review type (Placet's shapes, as the README documents them)."""
    if kind == "approval":
        return {
            "options": [
                {"id": "approve", "label": "Approve", "style": "primary"},
                {"id": "reject", "label": "Reject", "style": "danger"},
                {"id": "later", "label": "Later", "style": "ghost"},
            ],
            "allowComment": True,
        }
    if kind == "selection":
        items = [{"id": f"i{k}", "label": f"Item {k}"} for k in range(4)]
        return {"mode": "multi" if n % 2 else "single", "items": items}
    if kind == "form":
        return {
            "fields": [
                {
                    "name": "decision",
                    "label": "Decision",
                    "type": "select",
                    "required": True,
                    "options": [{"value": "ship", "label": "Ship"}, {"value": "hold", "label": "Hold"}],
                },
                {"name": "note", "label": "Note", "type": "textarea"},
                {"name": "risk", "label": "Risk", "type": "range", "min": 0, "max": 10, "step": 1},
                {"name": "notify", "label": "Notify", "type": "checkbox"},
                {"name": "on", "label": "Date", "type": "date"},
                {"name": "token", "label": "Token", "type": "password"},
            ],
            "dismissLabel": "Not now",
        }
    if kind == "text-input":
        return {"placeholder": "Why?", "minLength": 2, "maxLength": 200, "markdown": True}
    return {"plugin": "table", "columns": ["key", "value"], "rows": [["n", n]]}


def response_for(kind: str, payload: dict[str, Any], tab: int) -> dict[str, Any]:
    """A valid answer, different per tab, in the form the API stores it (so it compares equal)."""
    if kind == "approval":
        return {"selectedOption": ("approve", "reject", "later")[tab % 3], "comment": f"from tab {tab}"}
    if kind == "selection":
        first = f"i{tab % 4}"
        return {"selectedIds": [first, f"i{(tab + 1) % 4}"] if payload.get("mode") == "multi" else [first]}
    if kind == "form":
        if tab == 2:
            return {"_dismissed": True}
        return {
            "decision": ("ship", "hold")[tab % 2],
            "note": f"from tab {tab}",
            "risk": tab,
            "notify": bool(tab % 2),
            "on": "2026-12-01",
            "token": f"s3cret-{tab}",
        }
    if kind == "text-input":
        return {"text": f"answer from tab {tab}"}
    return {"choice": tab, "ok": True}


@dataclass(frozen=True)
class Channel:
    id: str
    key: str  # the receiver path that identifies it
    owner: int
    behaviour: Behaviour
    secret: str  # its webhook signing secret


@dataclass(frozen=True)
class Endpoint:
    """An explicit endpoint of an owner: a channel's, or every channel's (``channel`` None). Its
    filter lets through the outcomes of ``review_types`` only."""

    id: str
    key: str  # the receiver path that identifies it
    owner: int
    channel: str | None
    event_types: tuple[str, ...]  # wire names: "review:responded", "review:expired"
    review_types: frozenset[str]
    rate_limit: int | None
    secret: str  # its own signing secret

    def body(self) -> dict[str, Any]:
        """What the owner sends to create it (the URL aside)."""
        return {
            "eventTypes": list(self.event_types),
            "filter": {"message.review.type": {"$in": sorted(self.review_types)}},
            **({"rateLimit": self.rate_limit} if self.rate_limit else {}),
        }


@dataclass
class Owner:
    index: int
    user_id: str
    api_key: str
    token: str
    agent: httpx.AsyncClient  # the agents' key
    tabs: list[httpx.AsyncClient]  # one human, several browser tabs (separate connections)
    channels: list[Channel] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    async def close(self) -> None:
        for client in (self.agent, *self.tabs):
            await client.aclose()


def retry_delay(resp: httpx.Response | None) -> float:
    """How long to wait before retrying a 5xx or a lost answer: Retry-After when given (bounded)."""
    if resp is not None and (after := resp.headers.get("retry-after", "")).isdigit():
        return min(float(after), 3.0)
    return 0.5


@dataclass
class Traffic:
    journal: Journal
    owners: list[Owner]
    rate: float  # new reviews per second
    rng: random.Random
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failures: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, seconds: float) -> None:
        """Create reviews at ``rate`` until ``seconds`` on the journal's clock, then wait for every
        one of them to reach its outcome as its agent sees it."""
        channels = [c for owner in self.owners for c in owner.channels]
        pings = [asyncio.create_task(self._status_pings(c)) for c in channels]
        clock = self.journal.clock
        next_at = clock.now()
        for n in itertools.count():
            if clock.now() >= seconds:
                break
            channel = channels[n % len(channels)]
            # Cycle the types per channel, so every channel (every receiver) gets every type.
            kind = REVIEW_TYPES[(n // len(channels)) % len(REVIEW_TYPES)]
            plan = self.rng.choices([p for p, _ in PLANS], [w for _, w in PLANS])[0]
            self._spawn(self._review(channel, kind, plan, n))
            next_at += 1.0 / self.rate
            await asyncio.sleep(max(0.0, next_at - clock.now()))
        self.stop.set()
        await asyncio.gather(*pings)
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def cancel(self) -> None:
        """Stop every agent and human now (the soak is being torn down)."""
        self.stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _review(self, channel: Channel, kind: str, plan: Plan, n: int) -> None:
        owner = self.owners[channel.owner]
        payload = review_payload(kind, n)
        body = {
            "channelId": channel.id,
            "text": f"soak review {n} ({kind}, {plan})",
            "clientId": f"soak-{n}",
            "review": {"type": kind, "payload": payload, "expiresInSeconds": EXPIRES_IN[plan]},
        }
        message = await self._create(owner, body)
        if message is None:
            return
        review = Review(
            message["id"], owner.index, channel.id, kind, plan, EXPIRES_IN[plan], self.journal.clock.now()
        )
        self.journal.reviews[review.id] = review
        expires_at = datetime.fromisoformat(message["review"]["expiresAt"])
        human = asyncio.create_task(self._human(owner, review, payload, expires_at))
        try:
            await self._wait(owner, review)
        finally:
            await human

    async def _create(self, owner: Owner, body: dict[str, Any]) -> dict[str, Any] | None:
        deadline = self.journal.clock.now() + PERSIST_SECONDS
        while True:
            resp = await self.journal.call(
                owner.agent, "POST", "/api/v1/messages", "POST /api/v1/messages", json=body
            )
            if resp is not None and resp.status_code in (200, 201):  # 200: a replay of the same clientId
                created: dict[str, Any] = resp.json()
                return created
            if resp is not None and resp.status_code < 500:
                self.failures.append(
                    f"POST /api/v1/messages {body['clientId']}: {resp.status_code} {resp.text[:200]}"
                )
                return None
            if self.journal.clock.now() > deadline:
                self.failures.append(
                    f"POST /api/v1/messages {body['clientId']}: gave up after {PERSIST_SECONDS:.0f}s"
                )
                return None
            await asyncio.sleep(retry_delay(resp))

    async def _wait(self, owner: Owner, review: Review) -> None:
        """Long-poll until the review is closed, as the README's loop does."""
        clock = self.journal.clock
        deadline = clock.now() + review.expires_in + PERSIST_SECONDS
        route = "GET /api/v1/reviews/{id}/wait"
        while clock.now() < deadline:
            timeout_ms = self.rng.choice(POLL_TIMEOUTS_MS)
            started = clock.now()
            resp = await self.journal.call(
                owner.agent,
                "GET",
                f"/api/v1/reviews/{review.id}/wait",
                route,
                params={"channel": review.channel, "timeout": timeout_ms},
                timeout=timeout_ms / 1000 + 15,
            )
            took = clock.now() - started
            body: dict[str, Any] = resp.json() if resp is not None and resp.status_code == 200 else {}
            status = resp.status_code if resp is not None else None
            self.journal.polls.append(Poll(review.id, started, took, timeout_ms, status, body.get("status")))
            if body.get("status") in ("completed", "expired"):
                review.seen_status, review.seen_response = body["status"], body.get("response")
                return
            if resp is not None and resp.status_code != 200 and resp.status_code < 500:
                self.failures.append(f"long-poll {review.id}: {resp.status_code} {resp.text[:200]}")
                return
            if status != 200:
                await asyncio.sleep(retry_delay(resp))
        self.failures.append(f"long-poll {review.id}: no outcome after {deadline:.0f}s")

    async def _human(
        self, owner: Owner, review: Review, payload: dict[str, Any], expires_at: datetime
    ) -> None:
        if review.plan == "ignore":
            return
        if review.plan == "race":
            # Aim at the deadline itself: some answers land just before it, some just after.
            left = (expires_at - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, left + self.rng.uniform(-0.4, 0.4)))
            await self._respond(owner, review, payload, 0)
            return
        await asyncio.sleep(self.rng.uniform(0.2, 2.5))
        tabs = range(TABS) if review.plan == "tabs" else range(1)
        await asyncio.gather(*(self._respond(owner, review, payload, tab) for tab in tabs))

    async def _respond(self, owner: Owner, review: Review, payload: dict[str, Any], tab: int) -> None:
        response = response_for(review.type, payload, tab)
        deadline = self.journal.clock.now() + PERSIST_SECONDS
        while True:
            at = self.journal.clock.now()
            resp = await self.journal.call(
                owner.tabs[tab],
                "POST",
                f"/api/v1/reviews/{review.id}/respond",
                "POST /api/v1/reviews/{id}/respond",
                json={"response": response},
            )
            status = resp.status_code if resp is not None else None
            self.journal.answers.append(Answer(review.id, tab, at, status, response))
            # 200 answered; 409 closed (by another tab, the deadline, or this tab's own earlier
            # attempt whose answer was lost): either way there is nothing left to do.
            if resp is not None and resp.status_code < 500:
                if resp.status_code not in (200, 409):
                    self.failures.append(f"respond {review.id}: {resp.status_code} {resp.text[:200]}")
                return
            if self.journal.clock.now() > deadline:
                self.failures.append(f"respond {review.id}: gave up after {PERSIST_SECONDS:.0f}s")
                return
            await asyncio.sleep(retry_delay(resp))

    async def _status_pings(self, channel: Channel) -> None:
        """Agent heartbeats: each is an ``agent.status`` event on the live clients' channels."""
        owner = self.owners[channel.owner]
        for status in itertools.cycle(("active", "busy")):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.rng.uniform(0.5, 1.5) * STATUS_PING_SECONDS)
            if self.stop.is_set():
                return
            await self.journal.call(
                owner.agent,
                "POST",
                "/api/v1/status/ping",
                "POST /api/v1/status/ping",
                json={"agentId": channel.id, "status": status, "message": "soak"},
            )
