"""An endpoint's rate limit is one budget for every dispatcher replica: two real Workers on one
real MongoDB, each holding some of an endpoint's deliveries, send one a second between them, not
one each. The second is the rate counter's (an injected clock), so nothing here waits for wall
time; the requests go to a real receiver."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sayso_common.clock import utcnow
from sayso_common.deliveries import new_delivery
from sayso_common.mongo import DELIVERIES, ENDPOINTS, Doc, collection, ensure_indexes
from sayso_common.secretbox import SecretBox
from sayso_common.webhook_signature import new_secret
from sayso_dispatcher.agents import AgentDirectory
from sayso_dispatcher.ratelimit import EndpointRates
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import Worker
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import eventually

KEY = "endpoint-rates-key-" + "k" * 20


@pytest.fixture
async def mongo(infra: Infra) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    await client.drop_database("endpoint_rates")
    yield client
    await client.close()


async def test_two_replicas_share_one_endpoint_budget(
    infra: Infra, mongo: AsyncMongoClient[Doc], receiver: Receiver
) -> None:
    db = mongo["endpoint_rates"]
    await ensure_indexes(db)
    box = SecretBox(KEY)
    now = utcnow()
    await collection(db, ENDPOINTS).insert_one(
        {"_id": "ep_r", "owner_id": "usr_r", "channel_id": "agt_r", "url": receiver.url("/limited"),
         "event_types": ["review:responded"], "format": "placet", "rate_limit": 1, "disabled": False,
         "signing_secrets": [{"secret_enc": box.seal(new_secret()), "created_at": now, "expires_at": None}],
         "created_at": now, "updated_at": now}
    )  # fmt: skip
    docs = [
        new_delivery(
            event_id=f"evt_{i}",
            event_type="review.responded",
            channel_id="agt_r",
            owner_id="usr_r",
            message_id=None,
            url=receiver.url("/limited"),
            source="endpoint",
            body='{"event":"review:responded"}',
            schedule=[1],
            now=now,
            due_at=now,
            claim=None,
            endpoint_id="ep_r",
        )
        for i in range(6)
    ]
    await collection(db, DELIVERIES).insert_many(docs)
    # Three each: both replicas hold work for the endpoint at once.
    settings = DispatcherSettings(
        secret_key=KEY,
        mongo_url=infra.mongo_url,
        dispatcher_allowed_networks=["127.0.0.0/8"],
        dispatcher_claim_batch=3,
    )
    # A second long past: what it defers is due again at once, so only the counter's clock decides.
    second = [float(int(time.time()) - 3600)]
    workers: list[Worker] = []
    senders: list[Sender] = []
    for name in ("replica-a", "replica-b"):
        sender = Sender(settings, name)
        rates = EndpointRates(db, clock=lambda: second[0] + 0.5)
        worker = Worker.create(settings, db, AgentDirectory(db, box), sender, name, rates=rates)
        workers.append(worker)
        senders.append(sender)

    async def settled(delivered: int) -> list[dict[str, Any]] | None:
        found = await db[DELIVERIES].find({}, {"state": 1, "claim": 1, "attempt_count": 1}).to_list()
        done = [d for d in found if d["state"] == "delivered"]
        # Every other delivery handed back, none in flight: the round is over.
        idle = all(d["claim"] is None for d in found if d["state"] == "pending")
        return (
            found if len(done) == delivered and idle and len(receiver.at("/limited")) == delivered else None
        )

    try:
        for window in (1, 2):
            for worker in workers:
                await worker.sweep_once()
            found = await eventually(functools.partial(settled, window), 20.0, f"window {window} sent once")
            assert sum(1 for d in found if d["state"] == "delivered") == window
            # Held back is not an attempt: the others were never tried.
            assert sorted(d["attempt_count"] for d in found) == [0] * (6 - window) + [1] * window
            second[0] += 1
        assert len({r.headers["webhook-id"] for r in receiver.at("/limited")}) == 2
    finally:
        for worker, sender in zip(workers, senders, strict=True):
            await worker.close(grace=1)
            await sender.close()
