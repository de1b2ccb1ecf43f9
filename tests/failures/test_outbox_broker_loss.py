"""The outbox relay against a broker that acknowledges records it cannot keep.

The local broker is memory-only. Restarted, it comes back empty; anything asking for a topic's
metadata (a consumer subscribing) recreates the topic with the broker's default four partitions,
and a producer still holding the old six-partition layout writes to partition 4 or 5, which the
broker acknowledges and drops. The relay must notice (new cluster id, missing partition) and
publish the batch again instead of pulling it from the outbox.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest
from pymongo import AsyncMongoClient

from sayso_common.events import AgentStatusChanged, AgentStatusData, event_to_document, parse_event
from sayso_common.kafka import create_producer, ensure_topics
from sayso_common.lease import Lease
from sayso_common.mongo import Doc
from sayso_common.outbox import OutboxRelay
from sayso_common.settings import ServiceSettings
from sayso_devstack.processes import Proc, start_tansu
from tests.conftest import Infra

pytestmark = pytest.mark.slow

TOPIC = "agent.status"
PARTITIONS = 6


def _channel_on_a_high_partition() -> str:
    """A channel whose key lands on partition 4 or 5 of six: a partition the recreated topic lacks."""
    while True:
        channel = f"ch_{secrets.token_hex(6)}"
        if (murmur2(channel.encode()) & 0x7FFFFFFF) % PARTITIONS >= 4:
            return channel


def _event(channel: str) -> AgentStatusChanged:
    data = AgentStatusData(agent_id=channel, status="active", last_activity_at=datetime.now(UTC))
    return AgentStatusChanged(channel_id=channel, owner_id="usr_test", data=data)


async def _recreate_like_a_subscriber(bootstrap: str) -> None:
    """Ask for the topic's metadata the way a consumer does, which auto-creates it (4 partitions)."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await client.start()
    try:
        await client.client.send(
            client.client.get_random_node(), MetadataRequest([TOPIC], allow_auto_topic_creation=True)
        )
    finally:
        await client.stop()


async def _seen(bootstrap: str, event_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        try:
            await consumer.start()
            for _ in range(4):
                batch = await consumer.getmany(timeout_ms=250)
                if any(parse_event(r.value).id == event_id for recs in batch.values() for r in recs):
                    return True
        except Exception:
            await asyncio.sleep(0.5)
        finally:
            await consumer.stop()
    return False


@pytest.fixture
async def broker(infra: Infra) -> AsyncIterator[Proc]:
    proc = start_tansu(infra.log_dir, name="tansu-loss")
    yield proc
    proc.stop()


async def test_relay_republishes_what_a_restarted_broker_dropped(infra: Infra, broker: Proc) -> None:
    bootstrap = f"127.0.0.1:{broker.port}"
    settings = ServiceSettings(
        mongo_url=infra.mongo_url,
        kafka_bootstrap=bootstrap,
        topic_partitions=PARTITIONS,
        secret_key="test-secret-key-" + "x" * 32,
        instance="relay-loss",
    )
    mongo: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    db = mongo[f"relay_loss_{secrets.token_hex(4)}"]
    relay = OutboxRelay(
        db,
        lambda: create_producer(settings),
        ["docs"],
        topic_prefix="",
        lease=Lease(db, "outbox-relay:test", "relay-test", 5),
        prepare=lambda: ensure_topics(settings),
    )
    task = asyncio.create_task(relay.run())
    channel = _channel_on_a_high_partition()
    restarted: Proc | None = None
    try:
        first = _event(channel)
        await db.docs.insert_one({"_id": "a", "outbox": [event_to_document(first)]})
        assert await _seen(bootstrap, first.id, timeout=60), "the relay never published to the first broker"

        broker.kill()
        second = _event(channel)
        await db.docs.insert_one({"_id": "b", "outbox": [event_to_document(second)]})
        await asyncio.sleep(1.0)  # the relay's producer is now retrying the batch on its own
        restarted = start_tansu(infra.log_dir, port=broker.port, name="tansu-loss-2")
        await _recreate_like_a_subscriber(bootstrap)

        assert await _seen(bootstrap, second.id, timeout=60), "an acknowledged-then-dropped event was lost"
        assert await db.docs.count_documents({"outbox.0": {"$exists": True}}) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if restarted:
            restarted.stop()
        await mongo.drop_database(db.name)
        await mongo.close()
