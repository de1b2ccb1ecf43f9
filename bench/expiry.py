"""Expiry: 10,000 reviews due at the same moment. Measures the time from their deadline until
every one is expired *and* its review.expired event is published (seen in the events store the
relay writes after Kafka acknowledged it)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.harness import Account, BenchStack, Result
from sayso_common.clock import utcnow
from sayso_common.ids import new_id
from sayso_devstack.processes import mongo_url

COUNT = 10_000
LEAD_SECONDS = 5.0


async def insert_due_reviews(
    db: AsyncDatabase[dict[str, object]], channel: str, count: int, lead: float
) -> datetime:
    """``count`` pending approval reviews on ``channel``, all due ``lead`` seconds from now,
    written straight to MongoDB as the API stores them (posting them would take longer than the
    lead). Returns the deadline."""
    agent = await db.agents.find_one({"_id": channel})
    assert agent is not None
    now = utcnow()
    deadline = now + timedelta(seconds=lead)
    docs = [
        {
            "_id": new_id("msg"), "channel_id": channel, "owner_id": agent["owner_id"], "sender_type": "agent",
            "text": f"bench {i}", "status": "info", "created_at": now, "updated_at": now, "delivery_status": "sent",
            "review": {"type": "approval", "status": "pending", "expires_at": deadline,
                       "payload": {"options": [{"id": "approve", "label": "Approve", "style": "primary"}]}},
        }
        for i in range(count)
    ]  # fmt: skip
    for start in range(0, count, 1000):
        await db.messages.insert_many(docs[start : start + 1000], ordered=False)
    return deadline


async def run(stack: BenchStack) -> Result:
    api = stack.service("api", instance="api-bench")
    stack.service("expirer", instance="expirer-bench")
    base = f"http://127.0.0.1:{api.port}"
    account = Account.create(base)
    channel = account.agent(base)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url(stack.mongo.port), tz_aware=True)
    db = client.sayso
    try:
        deadline = await insert_due_reviews(db, channel, COUNT, LEAD_SECONDS)
        wall_deadline = time.monotonic() + (deadline - utcnow()).total_seconds()
        expired_at = published_at = None
        progress: list[float] = []
        while time.monotonic() < wall_deadline + 120:
            await asyncio.sleep(0.1)
            if time.monotonic() < wall_deadline:
                continue
            if expired_at is None:
                pending = await db.messages.count_documents(
                    {"channel_id": channel, "review.status": "pending"}
                )
                progress.append(COUNT - pending)
                if pending == 0:
                    expired_at = time.monotonic() - wall_deadline
            if expired_at is not None:
                events = await db.events.count_documents({"channel_id": channel, "type": "review.expired"})
                if events >= COUNT:
                    published_at = time.monotonic() - wall_deadline
                    break
    finally:
        await client.close()
    met = published_at is not None and published_at <= 5.0
    return Result(
        name="Expiry",
        measure={
            "reviews": COUNT,
            "all_expired_s": round(expired_at, 2) if expired_at is not None else None,
            "all_published_s": round(published_at, 2) if published_at is not None else None,
        },
        baseline=None,
        ratio=None,
        target="<= 5 s after the deadline, events published",
        met=met,
        notes=["one expirer (bulk conditional updates of 1000), the API's outbox relay publishing to Tansu"],
        series={"expired reviews (every 0.1 s after the deadline)": progress},
    )
