"""A MongoDB collection used as a leased work queue (deliveries, notifications).

Each document is ``pending`` with a ``next_attempt_at``; a worker claims due documents by writing
a claim token of its own and a lease end into them, and every later write is conditional on that
token, so a worker whose lease lapsed can never overwrite the work of the one that took over. A
claimed document whose lease lapses is simply due again.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from sayso_common.mongo import insert_new

D = TypeVar("D", bound=Any)


def _due(now: datetime) -> dict[str, Any]:
    return {"state": "pending", "next_attempt_at": {"$lte": now}}


class LeasedQueue(Generic[D]):
    def __init__(self, coll: AsyncCollection[D], instance: str, lease_seconds: float) -> None:
        self.coll = coll
        self._instance = instance
        self._lease = timedelta(seconds=lease_seconds)
        self._counter = itertools.count()

    def new_claim(self) -> str:
        """A token no other claim (of this process or another instance) carries."""
        return f"{self._instance}:{next(self._counter)}"

    def lease_end(self, now: datetime) -> datetime:
        return now + self._lease

    async def insert_new(self, docs: list[D]) -> list[D]:
        """Insert what is not there yet; returns the documents actually inserted. Work planned
        twice (a redelivered Kafka record, the relay publishing twice) hits the unique index and
        creates nothing."""
        return await insert_new(self.coll, docs)

    async def claim_due(self, now: datetime, limit: int, projection: dict[str, Any] | None = None) -> list[D]:
        """Claim up to ``limit`` due documents, oldest first: new or retrying work that is due,
        and work whose lease lapsed."""
        if limit <= 0:
            return []
        ids = [
            d["_id"]
            for d in await self.coll.find(_due(now), {"_id": 1})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
            .to_list()
        ]
        if not ids:
            return []
        claim = self.new_claim()
        await self.coll.update_many(
            {"_id": {"$in": ids}, **_due(now)},
            {"$set": {"claim": claim, "next_attempt_at": self.lease_end(now)}},
        )
        # Another worker may have won some of them between the find and the update.
        return await self.coll.find({"_id": {"$in": ids}, "claim": claim}, projection).to_list()

    async def next_due(self) -> datetime | None:
        """When the earliest pending document falls due (None when there is none)."""
        first = await self.coll.find_one(
            {"state": "pending"}, {"next_attempt_at": 1}, sort=[("next_attempt_at", ASCENDING)]
        )
        value: Any = first.get("next_attempt_at") if first else None
        return value if isinstance(value, datetime) else None

    async def count_due(self, now: datetime) -> int:
        return await self.coll.count_documents(_due(now), limit=100_000)
