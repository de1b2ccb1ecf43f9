"""Expiry storm, end to end: N reviews due at the same moment on a channel whose agent has a
webhook on a local receiver. Measures, from the deadline, when every review is expired and when
the receiver has every ``review:expired`` webhook: expirer -> outbox relay -> Kafka -> dispatcher
-> HTTP, all under the same burst.

``SAYSO_BENCH_STORM_REVIEWS`` sets N (10,000 by default, the target's size).
"""

from __future__ import annotations

import asyncio
import os
import time

from pymongo import AsyncMongoClient

from bench.delivery import Sink
from bench.expiry import insert_due_reviews
from bench.harness import Account, BenchStack, Result
from sayso_common.clock import utcnow
from sayso_devstack.processes import mongo_url

LEAD_SECONDS = 6.0
TARGET_SECONDS = 10.0
GIVE_UP_SECONDS = 180.0


def reviews() -> int:
    return int(os.environ.get("SAYSO_BENCH_STORM_REVIEWS", "10000"))


async def run(stack: BenchStack) -> Result:
    count = reviews()
    api = stack.service("api", instance="api-bench")
    stack.service("expirer", instance="expirer-bench")
    stack.service("dispatcher", instance="dispatcher-bench")
    sink = await Sink().start()
    base = f"http://127.0.0.1:{api.port}"
    channel = Account.create(base).agent(base, webhookUrl=sink.url("expired"))
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url(stack.mongo.port), tz_aware=True)
    expired_at = received_at = None
    expired: list[float] = []
    received: list[float] = []
    try:
        deadline = await insert_due_reviews(client.sayso, channel, count, LEAD_SECONDS)
        wall_deadline = time.monotonic() + (deadline - utcnow()).total_seconds()
        await asyncio.sleep(max(0.0, wall_deadline - time.monotonic()))
        window = stack.meter.snapshot()
        while time.monotonic() < wall_deadline + GIVE_UP_SECONDS:
            await asyncio.sleep(0.25)
            now = time.monotonic() - wall_deadline
            if expired_at is None:
                pending = await client.sayso.messages.count_documents(
                    {"channel_id": channel, "review.status": "pending"}
                )
                expired.append(count - pending)
                if pending == 0:
                    expired_at = now
            received.append(len(sink.arrived))
            if len(sink.arrived) >= count:
                received_at = now
                break
        usage = stack.meter.since(window)
    finally:
        await client.close()
        await sink.stop()
    return Result(
        name="Expiry storm end to end",
        measure={
            "reviews": count,
            "all_expired_s": round(expired_at, 2) if expired_at is not None else None,
            "all_webhooks_s": round(received_at, 2) if received_at is not None else None,
            "webhooks_received": len(sink.arrived),
        },
        baseline=None,
        ratio=None,
        target=f"all expired and all webhooks received <= {TARGET_SECONDS:.0f} s after the deadline",
        met=received_at is not None and received_at <= TARGET_SECONDS,
        notes=[
            f"{count} reviews with one deadline, one agent webhook on a local aiohttp receiver; one api "
            "(outbox relay), one expirer, one dispatcher; webhooks counted by distinct webhook-id; "
            "sampled every 0.25 s"
        ],
        series={"expired (every 0.25 s)": expired, "webhooks received (every 0.25 s)": received},
        resources=usage.as_dict(),
    )
