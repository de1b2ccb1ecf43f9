"""A lease is renewed only when a third of its TTL has passed, not at every relay pass: each
renewal is a MongoDB write (a journal flush) that stood in front of every event the relay
published (issue #36). Against the real mongod and broker."""

from __future__ import annotations

import asyncio
import secrets
import time

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from sayso_common.clock import utcnow
from sayso_common.events import MessageCreated, MessageData, event_to_document
from sayso_common.lease import Lease
from sayso_common.mongo import LEASES, MESSAGES, Doc, ensure_indexes
from sayso_common.outbox import OutboxRelay
from sayso_common.views import MessageView
from tests.conftest import Infra


async def test_keep_renews_only_when_a_third_of_the_ttl_has_passed(infra: Infra) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"lease_{secrets.token_hex(4)}"]
    try:
        lease = Lease(db, "job", "me", 0.9)
        assert await lease.keep()
        first = await db[LEASES].find_one({"_id": "job"})
        assert first is not None
        assert first["holder"] == "me"
        # Within a third of the TTL nothing is written: the document's removal goes unnoticed.
        await db[LEASES].delete_one({"_id": "job"})
        assert await lease.keep()
        assert await db[LEASES].find_one({"_id": "job"}) is None
        await asyncio.sleep(0.35)
        assert lease.due_for_renewal()
        assert await lease.keep()
        assert (await db[LEASES].find_one({"_id": "job"}) or {}).get("holder") == "me"
        # Another holder's live lease is never taken, and once refused, keep asks MongoDB again.
        other = Lease(db, "job", "other", 30)
        assert not await other.keep()
        assert not await other.keep()
    finally:
        await client.drop_database(db.name)
        await client.close()


def _event(i: int) -> Doc:
    view = MessageView(id=f"msg_{i}", channel_id="ch_l", text="t", created_at=utcnow())
    return event_to_document(MessageCreated(channel_id="ch_l", owner_id="o", data=MessageData(message=view)))


async def _published(db: object, doc_id: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        doc = await db[MESSAGES].find_one({"_id": doc_id}, {"outbox": 1})  # type: ignore[index]
        if doc is not None and doc.get("outbox") == []:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{doc_id} was not published")


async def test_the_relay_publishes_without_renewing_a_lease_it_holds(infra: Infra) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[f"lease_relay_{secrets.token_hex(4)}"]
    await ensure_indexes(db)
    relay = OutboxRelay(
        db,
        lambda: AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap),
        [MESSAGES],
        topic_prefix=f"l{secrets.token_hex(3)}.",
        lease=Lease(db, "relay", "me", 60),
    )
    task = asyncio.create_task(relay.run())
    try:
        await db[MESSAGES].insert_one({"_id": "a", "outbox": [_event(1)]})
        relay.wake()
        await _published(db, "a")
        held = await db[LEASES].find_one({"_id": "relay"})
        assert held is not None
        for i in range(2, 5):
            await db[MESSAGES].insert_one({"_id": f"m{i}", "outbox": [_event(i)]})
            relay.wake()
            await _published(db, f"m{i}")
        # Three more passes published, and the lease was written by none of them.
        assert await db[LEASES].find_one({"_id": "relay"}) == held
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.drop_database(db.name)
        await client.close()
