"""MongoDB operations on notifications: insert (deduplicated on the key), claim, apply an
outcome, cancel. Every write after a claim is conditional on the claim token, so a notifier whose
lease lapsed can never overwrite the work of the one that took over."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from sayso_common import notifications
from sayso_common.documents import NotificationDoc, NotificationKind
from sayso_common.leased import LeasedQueue
from sayso_common.mongo import NOTIFICATIONS, Database, collection


class NotificationStore(LeasedQueue[NotificationDoc]):
    def __init__(self, db: Database, instance: str, lease_seconds: float) -> None:
        super().__init__(collection(db, NOTIFICATIONS), instance, lease_seconds)

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
