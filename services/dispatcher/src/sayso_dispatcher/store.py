"""MongoDB operations on deliveries: insert (deduplicated on event x target), claim, renew,
record, release. Every write after a claim is conditional on the claim token, so a replica whose
lease lapsed can never overwrite the work of the one that took over."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.write_concern import WriteConcern

from sayso_common.batching import TurnBatcher
from sayso_common.deliveries import message_status
from sayso_common.documents import DeliveryDoc
from sayso_common.leased import LeasedQueue
from sayso_common.mongo import DELIVERIES, MESSAGES, Database, Doc, collection, insert_new
from sayso_common.views import DeliveryStatus


class GroupedWrites:
    """Single-document updates from many concurrent attempts, sent as one unordered bulk write
    per event-loop turn: at hundreds of deliveries a second, one round trip per outcome would
    cost more than the HTTP requests themselves."""

    def __init__(self, coll: AsyncCollection[Any]) -> None:
        self._coll = coll
        self._batcher: TurnBatcher[tuple[UpdateOne, Doc | None], bool] = TurnBatcher(self._write)

    async def update(self, filter_: Doc, update: Doc, applied: Doc | None = None) -> bool:
        """Apply ``update`` to the document matching ``filter_``. Returns whether it matched;
        ``applied`` is a filter that finds the document only if this update landed, used to
        tell the ops of a bulk apart when not all of them matched."""
        return await self._batcher.submit((UpdateOne(filter_, update), applied))

    async def _write(self, batch: list[tuple[UpdateOne, Doc | None]]) -> list[bool]:
        result = await self._coll.bulk_write([op for op, _ in batch], ordered=False)
        if result.matched_count == len(batch):
            return [True] * len(batch)
        return [
            applied is None or await self._coll.count_documents(applied, limit=1) == 1 for _, applied in batch
        ]


class StatusMirror:
    """Copies of delivery statuses onto messages, grouped per event-loop turn into one
    ``update_many`` per run of the same status. Unlike an outcome, a copy needs no answer per
    document (``message_status`` already skips what it must not overwrite), so a thousand
    deliveries finishing together cost mongod one statement instead of a thousand."""

    def __init__(self, coll: AsyncCollection[Any]) -> None:
        self._coll = coll
        self._batcher: TurnBatcher[tuple[str, DeliveryStatus, datetime], None] = TurnBatcher(self._write)

    async def copy(self, message_id: str, status: DeliveryStatus, now: datetime) -> None:
        await self._batcher.submit((message_id, status, now))

    async def _write(self, batch: list[tuple[str, DeliveryStatus, datetime]]) -> list[None]:
        # Consecutive runs, applied in order: two statuses for one message in the same batch
        # land in the order they were recorded, as one write each did.
        ops = [
            UpdateMany(*message_status([m for m, _, _ in run], status, max(at for _, _, at in run)))
            for status, group in itertools.groupby(batch, key=lambda item: item[1])
            for run in [list(group)]
        ]
        await self._coll.bulk_write(ops, ordered=True)
        return [None] * len(batch)


class DeliveriesLostError(Exception):
    """Deliveries whose insert was applied are gone by the time it should be committed (a
    failover rolled it back): the records that planned them must be handled again."""


class DeliveryStore(LeasedQueue[DeliveryDoc]):
    def __init__(self, db: Database, instance: str, lease_seconds: float) -> None:
        super().__init__(collection(db, DELIVERIES), instance, lease_seconds)
        self._outcomes = GroupedWrites(self.coll)
        self._mirrors = StatusMirror(collection(db, MESSAGES))
        self._applied = self.coll.with_options(write_concern=WriteConcern(w=1))
        self._committed = self.coll.with_options(write_concern=WriteConcern("majority"))

    async def insert_durable(
        self, docs: list[DeliveryDoc], applied: Callable[[list[DeliveryDoc]], None]
    ) -> list[DeliveryDoc]:
        """Insert the deliveries not there yet; hand those inserted to ``applied`` as soon as the
        primary has applied the insert, and return them once it is majority-committed (durable:
        on one node, journaled). The requests start while the commit is awaited (one journal
        flush off the way from an answer to its webhook, issue #36); the caller's Kafka offsets
        still wait for it. Work planned twice hits the unique index before anything is sent.
        A commit that never comes (the node crashed, a failover rolled the insert back) raises,
        also when the commit barrier ran on a new primary that never had the insert
        (:class:`DeliveriesLostError`): the records are handled again, re-planning any delivery that was lost, which sends it
        again with the same ``webhook-id`` (at least once), while the lost one's outcome finds
        no document to record on (one outcome)."""
        if not docs:
            return []
        inserted = await insert_new(self._applied, docs)
        applied(inserted)
        # A write that changes nothing still waits for its write concern, on everything the node
        # applied before it (the insert, and any earlier handling's insert of a duplicate), and
        # mongod flushes the journal for it at once. A majority read after the insert would wait
        # for the journal's next periodic flush instead (up to 100 ms, measured). It matches the
        # deliveries just inserted ($setOnInsert without upsert changes none), so a barrier that
        # ran on a new primary after a failover, without the insert, says they are missing
        # (pymongo retries it there on its own after a step-down).
        ids = [doc["_id"] for doc in inserted]
        found = await self._committed.update_many({"_id": {"$in": ids}}, {"$setOnInsert": {"_": 1}})
        if found.matched_count != len(ids):
            raise DeliveriesLostError(
                f"{len(ids) - found.matched_count} of {len(ids)} new deliveries were rolled back"
            )
        return inserted

    async def claim_due(
        self, now: datetime, limit: int, projection: dict[str, Any] | None = None
    ) -> list[DeliveryDoc]:
        """Claim up to ``limit`` due deliveries (retries that are due, and leases that lapsed),
        without their outbox (the dispatcher never reads its own pending events)."""
        return await super().claim_due(now, limit, projection or {"outbox": 0})

    async def renew(self, claims: dict[str, str], now: datetime) -> None:
        """Extend the leases of everything this process holds (queued or in flight)."""
        if not claims:
            return
        until = self.lease_end(now)
        ops = [
            UpdateOne({"_id": _id, "claim": claim, "state": "pending"}, {"$set": {"next_attempt_at": until}})
            for _id, claim in claims.items()
        ]
        for start in range(0, len(ops), 1000):
            await self.coll.bulk_write(ops[start : start + 1000], ordered=False)

    async def record(self, doc: DeliveryDoc, update: Doc, attempt_at: datetime, by: str) -> bool:
        """Apply an outcome; False if the claim was lost to another replica."""
        return await self._outcomes.update(
            {"_id": doc["_id"], "claim": doc["claim"]},
            update,
            applied={"_id": doc["_id"], "attempts": {"$elemMatch": {"at": attempt_at, "by": by}}},
        )

    async def release(self, docs: list[DeliveryDoc], at: datetime) -> None:
        """Give claimed deliveries back, due at ``at`` (shutdown, or an open circuit)."""
        ops = [
            UpdateOne(
                {"_id": d["_id"], "claim": d["claim"], "state": "pending"},
                {"$set": {"claim": None, "next_attempt_at": at}},
            )
            for d in docs
        ]
        if ops:
            await self.coll.bulk_write(ops, ordered=False)

    async def release_each(self, docs: list[tuple[DeliveryDoc, datetime]]) -> None:
        """Give claimed deliveries back, each due at its own time (a rate limit's spread)."""
        ops = [
            UpdateOne(
                {"_id": d["_id"], "claim": d["claim"], "state": "pending"},
                {"$set": {"claim": None, "next_attempt_at": at}},
            )
            for d, at in docs
        ]
        if ops:
            await self.coll.bulk_write(ops, ordered=False)

    async def mirror_status(self, message_id: str, status: DeliveryStatus, now: datetime) -> None:
        """Copy the delivery status onto the message, unless the agent already acknowledged it
        (``agent_received`` is the last word)."""
        await self._mirrors.copy(message_id, status, now)
