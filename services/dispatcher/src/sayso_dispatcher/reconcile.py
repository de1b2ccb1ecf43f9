"""Reconciliation: reviews that were answered or expired but never became a delivery, because
their event was lost on the way (the local broker keeps everything in memory).

A pass walks messages still marked ``delivery_status: sent`` in order of last change, from a
high-water mark forward, in bounded batches, and hands the missing ones to the worker as events.
It reuses the original event whenever it can still be found - in the message's outbox (not yet
published) or in the ``events`` collection (published) - so a late Kafka copy of it is
deduplicated by the unique (event id, URL) index and the receiver sees one ``webhook-id``.
Only one replica reconciles at a time (a lease), so a synthesised event is made once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pydantic import ValidationError

from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import MessageDoc
from sayso_common.events import (
    Event,
    MessageData,
    ReviewExpired,
    ReviewResponded,
    parse_event,
)
from sayso_common.ids import min_id
from sayso_common.mongo import DELIVERIES, EVENTS, MESSAGES, Database, collection
from sayso_common.outbox import event_from_events_document
from sayso_common.views import message_view
from sayso_dispatcher import metrics
from sayso_dispatcher.worker import Worker

log = logging.getLogger(__name__)

# Clock skew between the API replica that minted an event id and the one that stamped the message.
EVENT_SLACK_MS = 60_000

CLOSED = {"completed": "review.responded", "expired": "review.expired"}


async def _original_event(db: Database, doc: MessageDoc, event_type: str) -> Event | None:
    for raw in doc.get("outbox") or []:
        if raw.get("type") == event_type:
            try:
                return parse_event(raw)
            except ValidationError:
                return None
    # A review's closing event comes after its message: ids sort by time, so the (channel_id, _id)
    # index scan starts there, not at the channel's oldest stored event (kept for days).
    created_ms = int(as_utc(doc["created_at"]).timestamp() * 1000)
    stored = await collection(db, EVENTS).find_one(
        {
            "channel_id": doc["channel_id"],
            "_id": {"$gte": min_id("evt", created_ms - EVENT_SLACK_MS)},
            "type": event_type,
            "data.message.id": doc["_id"],
        }
    )
    return event_from_events_document(stored) if stored else None


def _synthesised(doc: MessageDoc, event_type: str) -> Event:
    view = message_view(doc)
    review = doc["review"]
    if event_type == "review.responded":
        at = review.get("responded_at") or doc["updated_at"]
        return ReviewResponded(
            channel_id=doc["channel_id"],
            owner_id=doc["owner_id"],
            occurred_at=as_utc(at),
            data=MessageData(message=view),
        )
    return ReviewExpired(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=as_utc(doc["updated_at"]),
        data=MessageData(message=view),
    )


async def reconcile_pass(
    db: Database, worker: Worker, since: datetime, until: datetime, batch: int
) -> tuple[datetime, int]:
    """Check messages changed in (since, until]; returns the new high-water mark and how many
    deliveries were created."""
    docs = (
        await collection(db, MESSAGES)
        .find(
            {
                "delivery_status": "sent",
                "review.status": {"$in": list(CLOSED)},
                "updated_at": {"$gt": since, "$lte": until},
            },
            {"request_hash": 0, "outbox_dead": 0},
        )
        .sort("updated_at", 1)
        .limit(batch)
        .to_list()
    )
    if not docs:
        return until, 0
    have = set(
        await collection(db, DELIVERIES).distinct(
            "message_id", {"message_id": {"$in": [d["_id"] for d in docs]}}
        )
    )
    events: list[Event] = []
    for doc in docs:
        if doc["_id"] in have:
            continue
        event_type = CLOSED[doc["review"]["status"]]
        events.append(await _original_event(db, doc, event_type) or _synthesised(doc, event_type))
    created = await worker.accept(events) if events else 0
    if created:
        metrics.RECONCILED.inc(created)
        log.info("reconciliation created deliveries", extra={"count": created})
    mark = as_utc(docs[-1]["updated_at"]) if len(docs) == batch else until
    return mark, created


class Reconciler:
    def __init__(self, db: Database, worker: Worker, grace: float, window: float, batch: int) -> None:
        self._db = db
        self._worker = worker
        self._grace = timedelta(seconds=grace)
        self._batch = batch
        self._mark = utcnow() - timedelta(seconds=window)

    async def run_once(self) -> int:
        """Catch up from the mark to ``now - grace``; returns deliveries created."""
        total = 0
        while True:
            until = utcnow() - self._grace
            if until <= self._mark:
                return total
            self._mark, created = await reconcile_pass(self._db, self._worker, self._mark, until, self._batch)
            total += created
            if self._mark >= until:
                return total
