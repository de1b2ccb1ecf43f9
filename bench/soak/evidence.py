"""What the stores say once the soak has drained: MongoDB (reviews, events, deliveries, outboxes,
agents) and Kafka (the dispatcher group's committed offsets against each partition's end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from sayso_common.mongo import AGENTS, DELIVERIES, EVENTS, MESSAGES
from sayso_common.topics import MESSAGE_CREATED, REVIEW_EXPIRED, REVIEW_RESPONDED, topic_for

# The collections whose documents carry an outbox (the API's relay and the dispatcher's).
OUTBOX_COLLECTIONS = (MESSAGES, AGENTS, DELIVERIES)
# What the dispatcher's consumer group reads (its subscriber's topics) and its default group id.
DISPATCHER_TOPICS = (REVIEW_RESPONDED, REVIEW_EXPIRED, MESSAGE_CREATED)
DISPATCHER_GROUP = "sayso-dispatcher"
REVIEW_EVENT_TYPES = ("review.responded", "review.expired")
DATABASE = "sayso"  # the services' default SAYSO_MONGO_DB, which the devstack keeps


@dataclass(frozen=True)
class StoredReview:
    channel: str
    type: str
    status: str
    response: Any
    outbox: int  # events still waiting in the document's outbox


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    owner_id: str
    channel_id: str
    message_id: str | None
    occurred_at: datetime
    # When the relay stored it (the events collection's expire_at: that stamp plus the retention).
    stored: datetime


@dataclass(frozen=True)
class StoredDelivery:
    event_id: str
    message_id: str | None
    channel_id: str
    state: str
    attempts: int
    endpoint_id: str | None = None  # None: the channel's own webhook URL (the implicit endpoint)


@dataclass
class Evidence:
    reviews: dict[str, StoredReview] = field(default_factory=dict)
    events: list[StoredEvent] = field(default_factory=list)
    deliveries: list[StoredDelivery] = field(default_factory=list)
    # Channels whose default webhook URL the dispatcher turned off (a receiver answered 410).
    disabled: set[str] = field(default_factory=set)
    outbox: dict[str, int] = field(default_factory=dict)  # collection -> documents with events left
    lag: dict[str, int] = field(default_factory=dict)  # topic -> records the group has not committed

    def review_events(self) -> dict[str, list[StoredEvent]]:
        by_message: dict[str, list[StoredEvent]] = {}
        for event in self.events:
            if event.type in REVIEW_EVENT_TYPES and event.message_id is not None:
                by_message.setdefault(event.message_id, []).append(event)
        return by_message


async def event_ids(mongo: AsyncMongoClient[dict[str, Any]], owners: list[str]) -> set[str]:
    """Ids of the events stored so far for these owners (the live clients' baseline)."""
    cursor = mongo[DATABASE][EVENTS].find({"owner_id": {"$in": owners}}, {"_id": 1})
    return {doc["_id"] async for doc in cursor}


async def outbox_left(mongo: AsyncMongoClient[dict[str, Any]]) -> dict[str, int]:
    db = mongo[DATABASE]
    return {
        name: await db[name].count_documents({"outbox.0": {"$exists": True}}) for name in OUTBOX_COLLECTIONS
    }


async def open_work(mongo: AsyncMongoClient[dict[str, Any]], channels: list[str]) -> dict[str, int]:
    """What is still moving: pending reviews and deliveries of the soak's channels, outboxes."""
    db = mongo[DATABASE]
    ours = {"channel_id": {"$in": channels}}
    return {
        "pending reviews": await db[MESSAGES].count_documents({**ours, "review.status": "pending"}),
        "pending deliveries": await db[DELIVERIES].count_documents({**ours, "state": "pending"}),
        **{f"outbox {k}": v for k, v in (await outbox_left(mongo)).items()},
    }


async def gather(mongo: AsyncMongoClient[dict[str, Any]], owners: list[str], channels: list[str]) -> Evidence:
    db = mongo[DATABASE]
    ours = {"channel_id": {"$in": channels}}
    evidence = Evidence(outbox=await outbox_left(mongo))
    async for doc in db[MESSAGES].find({**ours, "review": {"$type": "object"}}):
        review = doc["review"]
        evidence.reviews[doc["_id"]] = StoredReview(
            doc["channel_id"],
            review["type"],
            review["status"],
            review.get("response"),
            len(doc.get("outbox") or []),
        )
    async for doc in db[EVENTS].find({"owner_id": {"$in": owners}}).sort("_id", 1):
        # Message and review events carry the message; status events carry other data.
        message = (doc.get("data") or {}).get("message")
        message_id = message.get("id") if isinstance(message, dict) else None
        evidence.events.append(
            StoredEvent(
                doc["_id"],
                doc["type"],
                doc["owner_id"],
                doc["channel_id"],
                message_id,
                doc["occurred_at"],
                doc["expire_at"],
            )
        )
    async for doc in db[DELIVERIES].find(ours):
        evidence.deliveries.append(
            StoredDelivery(
                doc["event_id"],
                doc.get("message_id"),
                doc["channel_id"],
                doc["state"],
                doc.get("attempt_count", 0),
                doc.get("endpoint_id"),
            )
        )
    async for doc in db[AGENTS].find({"_id": {"$in": channels}, "webhook_enabled": False}, {"_id": 1}):
        evidence.disabled.add(doc["_id"])
    return evidence


async def consumer_lag(bootstrap: str, group: str = DISPATCHER_GROUP) -> dict[str, int]:
    """Per topic, records past the group's committed offsets. A consumer with the group id that
    subscribes to nothing only reads the offsets: it never joins, so it moves no partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        lag: dict[str, int] = {}
        for event_type in DISPATCHER_TOPICS:
            topic = topic_for(event_type)
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends = await consumer.end_offsets(partitions) if partitions else {}
            behind = 0
            for tp in partitions:
                committed = await consumer.committed(tp)
                behind += max(0, ends[tp] - (committed or 0))
            lag[topic] = behind
        return lag
    finally:
        await consumer.stop()
