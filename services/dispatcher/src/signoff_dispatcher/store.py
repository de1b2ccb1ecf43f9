"""MongoDB operations on deliveries: insert (deduplicated on event x URL), claim, renew,
record, release. Every write after a claim is conditional on the claim token, so a replica whose
lease lapsed can never overwrite the work of the one that took over."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from signoff_common.batching import TurnBatcher
from signoff_common.deliveries import message_status
from signoff_common.documents import DeliveryDoc
from signoff_common.mongo import DELIVERIES, MESSAGES, Database, Doc, collection, insert_new
from signoff_common.views import DeliveryStatus


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


class DeliveryStore:
    def __init__(self, db: Database, instance: str, lease_seconds: float) -> None:
        self._db = db
        self.coll = collection(db, DELIVERIES)
        self._instance = instance
        self._lease = timedelta(seconds=lease_seconds)
        self._counter = itertools.count()
        self._outcomes = GroupedWrites(self.coll)
        self._mirrors = StatusMirror(collection(db, MESSAGES))

    def new_claim(self) -> str:
        return f"{self._instance}:{next(self._counter)}"

    def lease_end(self, now: datetime) -> datetime:
        return now + self._lease

    async def insert_new(self, docs: list[DeliveryDoc]) -> list[DeliveryDoc]:
        """Insert what is not there yet; returns the documents actually inserted. A Kafka record
        seen twice (redelivery, or the relay publishing twice) hits the unique index and
        creates nothing."""
        return await insert_new(self.coll, docs)

    async def claim_due(self, now: datetime, limit: int) -> list[DeliveryDoc]:
        """Claim up to ``limit`` due deliveries (retries that are due, and leases that lapsed)."""
        if limit <= 0:
            return []
        due = {"state": "pending", "next_attempt_at": {"$lte": now}}
        ids = [
            d["_id"]
            for d in await self.coll.find(due, {"_id": 1})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
            .to_list()
        ]
        if not ids:
            return []
        claim = self.new_claim()
        await self.coll.update_many(
            {"_id": {"$in": ids}, **due},
            {"$set": {"claim": claim, "next_attempt_at": self.lease_end(now)}},
        )
        # Another replica may have won some of them between the find and the update.
        return await self.coll.find({"_id": {"$in": ids}, "claim": claim}, {"outbox": 0}).to_list()

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

    async def next_due(self) -> datetime | None:
        first = await self.coll.find_one(
            {"state": "pending"}, {"next_attempt_at": 1}, sort=[("next_attempt_at", ASCENDING)]
        )
        value: Any = first.get("next_attempt_at") if first else None
        return value if isinstance(value, datetime) else None

    async def count_due(self, now: datetime) -> int:
        return await self.coll.count_documents(
            {"state": "pending", "next_attempt_at": {"$lte": now}}, limit=100_000
        )

    async def mirror_status(self, message_id: str, status: DeliveryStatus, now: datetime) -> None:
        """Copy the delivery status onto the message, unless the agent already acknowledged it
        (``agent_received`` is the last word)."""
        await self._mirrors.copy(message_id, status, now)
