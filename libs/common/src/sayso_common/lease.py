"""A named lease in MongoDB: at most one holder at a time, taken over once it lapses.

Used where exactly one replica should do a job (the outbox relay); a crashed holder's lease
expires after ``ttl`` and another replica takes over.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from sayso_common.clock import utcnow
from sayso_common.mongo import LEASES, Database, collection


class Lease:
    def __init__(self, db: Database, name: str, holder: str, ttl: float) -> None:
        self._coll = collection(db, LEASES)
        self._name = name
        self._holder = holder
        self._ttl = ttl
        self._renewed_at = 0.0
        self._held = False

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def ttl(self) -> float:
        return self._ttl

    async def hold(self) -> bool:
        """Take or renew the lease; False if someone else holds a live one."""
        now = utcnow()
        try:
            await self._coll.find_one_and_update(
                {"_id": self._name, "$or": [{"holder": self._holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": self._holder, "until": now + timedelta(seconds=self._ttl)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the upsert raced a live lease held by another replica
            self._held = False
            return False
        self._renewed_at = time.monotonic()
        self._held = True
        return True

    async def keep(self) -> bool:
        """Whether this holder has the lease, renewing it only when :meth:`due_for_renewal`. A
        lease renewed less than a third of its TTL ago has two thirds left: no other holder can
        take it before the next renewal. A pass that renewed every time put a MongoDB write (a
        journal flush) in front of every event the relay publishes (issue #36)."""
        if self._held and not self.due_for_renewal():
            return True
        return await self.hold()

    def due_for_renewal(self) -> bool:
        return time.monotonic() - self._renewed_at > self._ttl / 3

    async def release(self) -> None:
        self._held = False
        await self._coll.delete_one({"_id": self._name, "holder": self._holder})
