"""MongoDB operations on notifications: insert (deduplicated on the key), claim, apply an
outcome, cancel. Every write after a claim is conditional on the claim token, so a notifier whose
lease lapsed can never overwrite the work of the one that took over."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any, get_args

from pymongo import ASCENDING

from signoff_common import notifications
from signoff_common.documents import NotificationDoc, NotificationKind
from signoff_common.mongo import NOTIFICATIONS, Database, collection, insert_new


class NotificationStore:
    def __init__(self, db: Database, instance: str, lease_seconds: float) -> None:
        self.coll = collection(db, NOTIFICATIONS)
        self._instance = instance
        self._lease = timedelta(seconds=lease_seconds)
        self._counter = itertools.count()

    async def insert_new(self, docs: list[NotificationDoc]) -> list[NotificationDoc]:
        """Insert what is not there yet; returns what was inserted. A redelivered event plans the
        same keys, which the unique index turns away."""
        return await insert_new(self.coll, docs)

    async def claim_due(self, now: datetime, limit: int) -> list[NotificationDoc]:
        """Claim up to ``limit`` due notifications (new, scheduled, retries, lapsed leases)."""
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
        claim = f"{self._instance}:{next(self._counter)}"
        await self.coll.update_many(
            {"_id": {"$in": ids}, **due}, {"$set": {"claim": claim, "next_attempt_at": now + self._lease}}
        )
        # Another replica may have won some of them between the find and the update.
        return await self.coll.find({"_id": {"$in": ids}, "claim": claim}).to_list()

    async def apply(self, filter_: dict[str, Any], update: dict[str, Any]) -> bool:
        return (await self.coll.update_one(filter_, update)).matched_count == 1

    async def record(self, doc: NotificationDoc, update: dict[str, Any]) -> bool:
        """Apply an attempt's outcome; False if the claim was lost to another replica."""
        return await self.apply({"_id": doc["_id"], "claim": doc.get("claim")}, update)

    async def cancel_for_review(self, message_id: str, now: datetime) -> dict[NotificationKind, int]:
        """Cancel what the closed review no longer needs; how many, by kind (for the metrics)."""
        filter_, update = notifications.cancel_for_closed_review(message_id, now)
        counts: dict[NotificationKind, int] = {}
        for kind in get_args(NotificationKind):
            result = await self.coll.update_many({**filter_, "kind": kind}, update)
            counts[kind] = result.modified_count
        return counts

    async def sent_slack(self, message_id: str) -> list[NotificationDoc]:
        """The review's Slack notices that went out (their messages show answer buttons)."""
        return await self.coll.find(
            {
                "message_id": message_id,
                "kind": "slack",
                "state": "sent",
                "purpose": {"$ne": notifications.OUTCOME},
            }
        ).to_list()

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
