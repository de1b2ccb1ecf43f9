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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.structs import RecordMetadata
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from sayso_common import audit, loops, otel
from sayso_common.aiokafka_internals import cluster_view, partition_leader
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import DeadLetterDoc, EventDoc
from sayso_common.events import MAX_EVENT_BYTES, Event, event_to_document, event_to_json, parse_event
from sayso_common.ids import id_time_ms, new_id
from sayso_common.lease import Lease
from sayso_common.mongo import (
    CARRIES_OUTBOX,
    DEAD_LETTERS,
    EVENTS,
    OUTBOX_COLLECTIONS,
    OUTBOX_INDEX,
    Database,
    Doc,
    collection,
)
from sayso_common.topics import topic_for

log = logging.getLogger(__name__)

PUBLISHED = Counter("sayso_outbox_published_total", "Events published by the outbox relay", ["type"])
DEAD_LETTERS_TOTAL = Counter(
    "sayso_outbox_dead_letters_total",
    "Outbox entries moved to the dead letters instead of published (too large for the broker, unreadable)",
    ["reason"],
)
OLDEST = Gauge("sayso_outbox_oldest_age_seconds", "Age of the oldest unpublished event seen")

# A document with events still to publish (what the partial OUTBOX_INDEX holds).
_HAS_OUTBOX: dict[str, Any] = {"outbox.0": {"$exists": True}}


@dataclass(frozen=True)
class Backlog:
    """What waits in the outboxes, read from MongoDB: it keeps growing while nothing publishes."""

    documents: int  # documents holding unpublished events
    oldest_age_seconds: float  # of the oldest unpublished event (0 when none)
    dead_letters: int  # entries moved aside (see OutboxRelay), until an operator removes them

    def as_json(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "oldestAgeSeconds": round(self.oldest_age_seconds, 1),
            "deadLetters": self.dead_letters,
        }


async def backlog(db: Database, now: datetime) -> Backlog:
    documents = 0
    oldest_ms: int | None = None
    for name in OUTBOX_COLLECTIONS:
        coll = db[name]
        documents += await coll.count_documents(_HAS_OUTBOX, hint=OUTBOX_INDEX.document["name"])
        first = await coll.find_one(
            _HAS_OUTBOX, {"outbox.id": 1}, sort=[("outbox.id", 1)], hint=OUTBOX_INDEX.document["name"]
        )
        for entry in (first or {}).get("outbox", []):
            with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
                stamp = id_time_ms(entry["id"])
                oldest_ms = stamp if oldest_ms is None else min(oldest_ms, stamp)
    age = 0.0 if oldest_ms is None else now.timestamp() - oldest_ms / 1000
    dead = await collection(db, DEAD_LETTERS).estimated_document_count()
    return Backlog(documents, max(0.0, age), dead)


class BrokerStateLostError(Exception):
    """The broker acknowledged records it cannot have kept; the batch must be published again."""


def events_document(event: Event, retention: timedelta, published: RecordMetadata | None = None) -> EventDoc:
    fields = event_to_document(event)
    fields["_id"] = fields.pop("id")
    fields["occurred_at"] = as_utc(event.occurred_at)
    # When it was stored: realtime resume's and the pull feed's order, whatever the retention.
    stored_at = utcnow()
    fields["stored_at"] = stored_at
    fields["expire_at"] = stored_at + retention
    doc = cast(EventDoc, fields)
    if published is not None:
        doc["published"] = {
            "topic": published.topic,
            "partition": published.partition,
            "offset": published.offset,
        }
    return doc


def event_from_events_document(doc: EventDoc) -> Event:
    data: dict[str, Any] = dict(doc)
    data["id"] = data.pop("_id")
    data.pop("expire_at", None)
    data.pop("published", None)
    data.pop("stored_at", None)
    return parse_event(data)


@dataclass(frozen=True)
class _Ready:
    doc_id: Any  # the document whose outbox holds the event
    event: Event
    value: bytes  # the event as published


# What the producer or the broker answers for a record too large to ever take: retrying cannot
# help, and a record that stays at the head of the outbox would hold back every later event.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


def _dead_letter(
    collection_name: str,
    doc_id: Any,
    raw: dict[str, Any],
    reason: str,
    detail: str,
    event: Event | None = None,
    value: bytes | None = None,
) -> DeadLetterDoc:
    entry_id = raw.get("id") if isinstance(raw, dict) else None
    return {
        "_id": event.id if event else (entry_id if isinstance(entry_id, str) else new_id("dead")),
        "reason": reason,
        "detail": detail,
        "collection": collection_name,
        "document_id": doc_id,
        "type": event.type if event else None,
        "channel_id": event.channel_id if event else None,
        "owner_id": event.owner_id if event else None,
        "size": len(value) if value is not None else 0,
        "entry": raw,
        "at": utcnow(),
    }


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
                    if not await self._lease.keep():
                        if watcher:
                            watcher.cancel()
                            watcher = None
                        await asyncio.sleep(1.0)
                        continue
                    if watcher is None or watcher.done():
                        watcher = asyncio.create_task(self._watch(), name="outbox-watch")
                    self._wake.clear()
                    await self.drain()
                    # At most a third of the lease between passes: a lease kept (not renewed) at
                    # one pass is still renewed with a third of its TTL to spare.
                    await loops.wait_set(self._wake, min(self._sweep, 3.0, self._lease.ttl / 3))
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
            {"$match": {"ns.coll": {"$in": self._collections}, "$or": CARRIES_OUTBOX}},
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
                # Each batch goes out with at least two thirds of the lease's TTL left (renewed
                # when due, a write only then), not with what was left when the pass began.
                if not await self._lease.keep():
                    return total
                total += await self._publish(name, docs)
                if len(docs) < self._batch:
                    break
        return total

    async def _publish(self, collection: str, docs: list[Doc]) -> int:
        ready: list[_Ready] = []
        dead: list[DeadLetterDoc] = []
        # The readable events among them: the change each records happened all the same.
        dead_events: list[Event] = []
        # Entries without a readable id are pulled by value, the rest by id in one statement.
        pulls: list[UpdateOne | UpdateMany] = []
        oldest: float | None = None
        for doc in docs:
            for raw in doc["outbox"]:
                try:
                    event = parse_event(raw)
                except ValidationError as exc:
                    dead.append(_dead_letter(collection, doc["_id"], raw, "unparseable", str(exc)[:500]))
                    pulls.append(UpdateOne({"_id": doc["_id"]}, {"$pull": {"outbox": raw}}))
                    continue
                value = event_to_json(event)
                if len(value) > MAX_EVENT_BYTES:
                    detail = f"{len(value)} bytes, more than the {MAX_EVENT_BYTES} an event may have"
                    dead.append(_dead_letter(collection, doc["_id"], raw, "too_large", detail, event, value))
                    dead_events.append(event)
                    continue
                ready.append(_Ready(doc["_id"], event, value))
                stamp = event.occurred_at.timestamp()
                oldest = stamp if oldest is None else min(oldest, stamp)
        if oldest is not None:
            OLDEST.set(max(0.0, utcnow().timestamp() - oldest))
        # Send in order; the producer keeps per-partition order, and the key (channel id) maps a
        # channel to one partition, so one channel's events arrive in the order written.
        sent: list[_Ready] = []
        if ready:
            written, refused = await asyncio.wait_for(self._send_all(ready), self._publish_timeout)
            if written:
                # Stored only once the cluster confirms it kept them: the store is what wakes idle
                # consumers (sayso_common.fetch_gate). Stored earlier, a batch the broker then lost
                # (a memory-only broker restarting) would be in `events` already, so its
                # republication's store would find the ids there, write nothing, and wake nobody:
                # the consumers would wait for their idle recheck.
                await asyncio.wait_for(self._confirm([meta for _, meta in written]), self._publish_timeout)
                sent = [item for item, _ in written]
                await self._remember([(item.event, meta) for item, meta in written])
            dead += [
                _dead_letter(
                    collection,
                    item.doc_id,
                    event_to_document(item.event),
                    "too_large",
                    why,
                    item.event,
                    item.value,
                )
                for item, why in refused
            ]
            dead_events += [item.event for item, _ in refused]
        # Moved aside before they leave the outbox: a crash in between only repeats the move. A
        # decision among them is audited all the same (it happened; only its event is not sent).
        if dead_events:
            await audit.record(self._db, dead_events)
        if dead:
            await self._bury(dead)
        # Unparseable entries were pulled by value above; the rest leave by id.
        buried = [d for d in dead if d["reason"] != "unparseable"]
        ids = [item.event.id for item in sent] + [d["_id"] for d in buried]
        if ids:
            # One statement for the whole batch rather than one per document: each document
            # loses exactly the ids handled here (ids are unique), as a pull per document did,
            # without mongod's per-statement cost on every message and delivery (README
            # *Performance*, issue #19).
            pulls.append(
                UpdateMany(
                    {
                        "_id": {
                            "$in": list({item.doc_id for item in sent} | {d["document_id"] for d in buried})
                        }
                    },
                    {"$pull": {"outbox": {"id": {"$in": ids}}}},
                )
            )
        if pulls:
            await self._db[collection].bulk_write(pulls, ordered=False)
        for item in sent:
            PUBLISHED.labels(item.event.type).inc()
        OLDEST.set(0)
        return len(sent)

    async def _send_all(
        self, ready: list[_Ready]
    ) -> tuple[list[tuple[_Ready, RecordMetadata]], list[tuple[_Ready, str]]]:
        """Send every event; returns those the broker stored and those it can never take (too
        large for it: refused by the producer before sending or by the broker). Any other
        failure raises, and the whole batch stays in the outbox for the next pass."""
        pending: list[tuple[_Ready, asyncio.Future[RecordMetadata]]] = []
        refused: list[tuple[_Ready, str]] = []
        spans = []
        for item in ready:
            e = item.event
            topic = topic_for(e.type, self._prefix)
            traceparent = e.traceparent
            if otel.active():
                span = otel.start(
                    f"publish {topic}",
                    e.traceparent,
                    otel.Kind.PRODUCER,
                    {"messaging.system": "kafka", "messaging.destination.name": topic,
                     "messaging.operation.type": "send", "messaging.message.id": e.id},
                )  # fmt: skip
                spans.append(span)
                traceparent = otel.traceparent_of(span)
            try:
                future = await self.producer.send(
                    topic,
                    item.value,
                    key=e.channel_id.encode(),
                    headers=[("traceparent", traceparent.encode())] if traceparent else None,
                )
            except _TOO_LARGE as exc:
                refused.append((item, f"refused by the producer: {exc}"))
                continue
            pending.append((item, future))
        try:
            results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        finally:
            for span in spans:  # a publish lasts until the broker stored the whole batch
                span.end()
        written: list[tuple[_Ready, RecordMetadata]] = []
        for (item, _), result in zip(pending, results, strict=True):
            if isinstance(result, _TOO_LARGE):
                refused.append((item, f"refused by the broker: {result}"))
            elif isinstance(result, BaseException):
                raise result
            else:
                written.append((item, result))
        return written, refused

    async def _bury(self, dead: list[DeadLetterDoc]) -> None:
        try:
            await collection(self._db, DEAD_LETTERS).insert_many(dead, ordered=False)
        except BulkWriteError as exc:
            # Duplicate ids: an earlier pass moved them already and crashed before the pull.
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise
        for d in dead:
            DEAD_LETTERS_TOTAL.labels(d["reason"]).inc()
            log.error(
                "outbox entry moved to the dead letters instead of published",
                extra={
                    "event_id": d["_id"],
                    "event_type": d.get("type"),
                    "channel_id": d.get("channel_id"),
                    "reason": d["reason"],
                    "detail": d["detail"],
                },
            )

    async def _confirm(self, written: list[RecordMetadata]) -> None:
        partitions = {(r.topic, r.partition) for r in written}
        # Ask a broker that took one of the writes: in a multi-broker cluster another may not
        # know a just-created topic yet, and a false alarm would only cost a republish.
        first = written[0]
        leader = partition_leader(self.producer, first.topic, first.partition)
        view = await cluster_view(self.producer.client, sorted({topic for topic, _ in partitions}), leader)
        if self._cluster_id is not None and view.cluster_id != self._cluster_id:
            raise BrokerStateLostError(f"cluster id changed from {self._cluster_id} to {view.cluster_id}")
        missing = sorted(partitions - view.partitions)
        if missing:
            raise BrokerStateLostError(f"acknowledged partitions missing from the cluster: {missing}")

    async def _remember(self, written: list[tuple[Event, RecordMetadata]]) -> None:
        # With the audit entries of the decisions among them, side by side (one round trip, not
        # two), before the events leave the outbox: a crash in between repeats both stores, which
        # keep what they stored once (by event id).
        await asyncio.gather(audit.record(self._db, [e for e, _ in written]), self._store(written))

    async def _store(self, written: list[tuple[Event, RecordMetadata]]) -> None:
        try:
            await collection(self._db, EVENTS).insert_many(
                [events_document(e, self._retention, meta) for e, meta in written], ordered=False
            )
        except BulkWriteError as exc:
            # Duplicate ids mean an earlier pass already stored them (published twice after a crash).
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise
