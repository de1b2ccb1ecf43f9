"""Transactional outbox relay.

State changes write their events into an ``outbox`` array inside the very document they change
(one atomic single-document write). The relay publishes those events to Kafka in order, copies
them into the ``events`` collection (the resume window for sockets and SSE) and pulls them from
the outbox. A change stream wakes it; nothing sleeps-and-polls except a slow safety sweep.

Only the lease holder relays, so a fleet of API replicas publishes each event once in the normal
case. After a crash between publish and pull an event can be published twice: consumers dedupe
on event id.

An acknowledgement alone is not trusted: before pulling a batch the relay asks the cluster
(without auto-creating anything) whether it is still the cluster the topics were prepared on and
whether every partition it wrote to exists. A broker that came back without its data (the local
memory-only one does; so does a Kafka swapped behind the same address) acknowledges writes to
partitions it does not have and drops them. Such a batch stays in the outbox and is published
again after the topics are recreated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata, TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from signoff_common import loops
from signoff_common.clock import as_utc, utcnow
from signoff_common.documents import EventDoc
from signoff_common.events import Event, event_to_document, event_to_json, parse_event
from signoff_common.kafka_metadata import cluster_view
from signoff_common.lease import Lease
from signoff_common.mongo import EVENTS, Database, Doc, collection
from signoff_common.topics import topic_for

log = logging.getLogger(__name__)

PUBLISHED = Counter("signoff_outbox_published_total", "Events published by the outbox relay", ["type"])
DEAD = Counter("signoff_outbox_dead_total", "Outbox entries that could not be parsed")
OLDEST = Gauge("signoff_outbox_oldest_age_seconds", "Age of the oldest unpublished event seen")

# Wake only for writes that carry outbox entries. Claims, lease renewals and the relay's own pulls
# (which leave ``outbox: []``) woke a drain each and found nothing: about three wasted wakes per
# webhook delivery. A write missed here would still be found by the periodic sweep.
_OUTBOX_KEYS = {
    "$filter": {
        "input": {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}},
        "cond": {
            "$and": [
                {"$regexMatch": {"input": "$$this.k", "regex": "^outbox(\\.|$)"}},
                {"$ne": ["$$this.v", []]},
            ]
        },
    }
}
_CARRIES_OUTBOX: list[dict[str, Any]] = [
    {"operationType": {"$in": ["insert", "replace"]}, "fullDocument.outbox.0": {"$exists": True}},
    {"operationType": "update", "$expr": {"$gt": [{"$size": _OUTBOX_KEYS}, 0]}},
]


class BrokerStateLostError(Exception):
    """The broker acknowledged records it cannot have kept; the batch must be published again."""


def events_document(event: Event, retention: timedelta) -> EventDoc:
    fields = event_to_document(event)
    fields["_id"] = fields.pop("id")
    fields["occurred_at"] = as_utc(event.occurred_at)
    fields["expire_at"] = utcnow() + retention
    return cast(EventDoc, fields)


def event_from_events_document(doc: EventDoc) -> Event:
    data: dict[str, Any] = dict(doc)
    data["id"] = data.pop("_id")
    data.pop("expire_at", None)
    return parse_event(data)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer_factory: Callable[[], AIOKafkaProducer],
        collections: list[str],
        *,
        topic_prefix: str,
        lease: Lease,
        batch_size: int = 500,
        sweep_interval: float = 30.0,
        retention: timedelta = timedelta(hours=24),
        publish_timeout: float = 15.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._new_producer = producer_factory
        self.producer = producer_factory()
        self._collections = collections
        self._prefix = topic_prefix
        self._lease = lease
        self._batch = batch_size
        self._sweep = sweep_interval
        self._retention = retention
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        # Creates topics; run before the first pass and after any failure, because a broker
        # that lost its data (the local one is memory-only) has lost its topics too.
        self._prepare = prepare
        self._prepared = False
        self.producer_started = False
        # The cluster id the topics were prepared on; a different one means the broker lost them.
        self._cluster_id: str | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        watcher: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    if not self._prepared and self._prepare is not None:
                        await self._prepare()
                        self._prepared = True
                    if not self.producer_started:
                        await self.producer.start()
                        self.producer_started = True
                        self._cluster_id = (await cluster_view(self.producer.client, [])).cluster_id
                    if not await self._lease.hold():
                        if watcher:
                            watcher.cancel()
                            watcher = None
                        await asyncio.sleep(1.0)
                        continue
                    if watcher is None or watcher.done():
                        watcher = asyncio.create_task(self._watch(), name="outbox-watch")
                    self._wake.clear()
                    await self.drain()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=min(self._sweep, 3.0))
                except BrokerStateLostError as exc:
                    log.warning("broker lost published records; recreating topics and republishing: %s", exc)
                    self._prepared = False
                    await self._reset_producer()
                    await asyncio.sleep(0.2)
                except Exception:
                    # Kafka or MongoDB unavailable: events stay in the outbox; try again shortly.
                    log.warning("outbox relay pass failed; retrying", exc_info=True)
                    self._prepared = False
                    await self._reset_producer()
                    await asyncio.sleep(1.0)
        finally:
            if watcher:
                watcher.cancel()
            await self.close()
            # A clean stop hands the relay on at once instead of after the lease's TTL.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lease.release(), 2)

    async def _reset_producer(self) -> None:
        """A producer whose broker vanished can retry its queued batches forever; start afresh.
        Whatever it still held is still in the outbox and is published again."""
        await self.close()
        self.producer = self._new_producer()

    async def close(self) -> None:
        if self.producer_started:
            self.producer_started = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.producer.stop(), 5)

    async def _watch(self) -> None:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"ns.coll": {"$in": self._collections}, "$or": _CARRIES_OUTBOX}},
            {"$project": {"operationType": 1}},
        ]
        # On open, a drain picks up anything written while no stream was open.
        await loops.watch(
            self._db,
            pipeline,
            lambda _: self._wake.set(),
            what="outbox change stream",
            on_open=self._wake.set,
        )

    async def drain(self) -> int:
        """Publish every pending outbox event; returns how many were published."""
        total = 0
        for name in self._collections:
            while True:
                docs = await (
                    self._db[name]
                    .find({"outbox.0": {"$exists": True}}, {"outbox": 1})
                    .sort("outbox.id", 1)
                    .limit(self._batch)
                    .to_list()
                )
                if not docs:
                    break
                total += await self._publish(name, docs)
                if self._lease.due_for_renewal() and not await self._lease.hold():
                    return total
                if len(docs) < self._batch:
                    break
        return total

    async def _publish(self, collection: str, docs: list[Doc]) -> int:
        events: list[Event] = []
        pulls: list[UpdateOne | UpdateMany] = []
        published_in: list[object] = []
        oldest: float | None = None
        for doc in docs:
            ok = False
            for raw in doc["outbox"]:
                try:
                    event = parse_event(raw)
                except ValidationError:
                    DEAD.inc()
                    log.error("unparseable outbox entry moved aside", extra={"doc": doc["_id"]})
                    pulls.append(
                        UpdateOne(
                            {"_id": doc["_id"]},
                            {"$pull": {"outbox": raw}, "$push": {"outbox_dead": raw}},
                        )
                    )
                    continue
                events.append(event)
                ok = True
                stamp = event.occurred_at.timestamp()
                oldest = stamp if oldest is None else min(oldest, stamp)
            if ok:
                published_in.append(doc["_id"])
        if published_in:
            # One statement for the whole batch rather than one per document: each document
            # loses exactly the ids published here (ids are unique), as a pull per document did,
            # without mongod's per-statement cost on every message and delivery (README
            # *Performance*, issue #19).
            published = [e.id for e in events]
            pulls.append(
                UpdateMany({"_id": {"$in": published_in}}, {"$pull": {"outbox": {"id": {"$in": published}}}})
            )
        if oldest is not None:
            OLDEST.set(max(0.0, utcnow().timestamp() - oldest))
        # Send in order; the producer keeps per-partition order, and the key (channel id) maps a
        # channel to one partition, so one channel's events arrive in the order written.
        if events:
            written = await asyncio.wait_for(self._send_all(events), self._publish_timeout)
            await asyncio.wait_for(self._confirm(written), self._publish_timeout)
            await self._remember(events)
        if pulls:
            await self._db[collection].bulk_write(pulls, ordered=False)
        for e in events:
            PUBLISHED.labels(e.type).inc()
        OLDEST.set(0)
        return len(events)

    async def _send_all(self, events: list[Event]) -> list[RecordMetadata]:
        futures = [
            await self.producer.send(
                topic_for(e.type, self._prefix),
                event_to_json(e),
                key=e.channel_id.encode(),
                headers=[("traceparent", e.traceparent.encode())] if e.traceparent else None,
            )
            for e in events
        ]
        return list(await asyncio.gather(*futures))

    async def _confirm(self, written: list[RecordMetadata]) -> None:
        partitions = {(r.topic, r.partition) for r in written}
        # Ask a broker that took one of the writes: in a multi-broker cluster another may not
        # know a just-created topic yet, and a false alarm would only cost a republish.
        first = written[0]
        leader = self.producer.client.cluster.leader_for_partition(
            TopicPartition(first.topic, first.partition)
        )
        view = await cluster_view(self.producer.client, sorted({topic for topic, _ in partitions}), leader)
        if self._cluster_id is not None and view.cluster_id != self._cluster_id:
            raise BrokerStateLostError(f"cluster id changed from {self._cluster_id} to {view.cluster_id}")
        missing = sorted(partitions - view.partitions)
        if missing:
            raise BrokerStateLostError(f"acknowledged partitions missing from the cluster: {missing}")

    async def _remember(self, events: list[Event]) -> None:
        try:
            await collection(self._db, EVENTS).insert_many(
                [events_document(e, self._retention) for e in events], ordered=False
            )
        except BulkWriteError as exc:
            # Duplicate ids mean an earlier pass already stored them (published twice after a crash).
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise
