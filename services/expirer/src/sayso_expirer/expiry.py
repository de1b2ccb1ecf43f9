"""Close reviews nobody answered before their deadline.

Each review is expired with ``review_state.expired``: a conditional update on ``status: pending``
that also appends the ``review.expired`` event to the message's outbox, so a human response
racing the deadline either lands first (and the update matches nothing) or loses (and gets 409),
never both. Several expirers may run at once: the same condition makes each review expire
exactly once, and the event rides in the same single-document write.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from prometheus_client import Counter, Histogram
from pymongo.errors import BulkWriteError

from sayso_common import review_state
from sayso_common.clock import as_utc
from sayso_common.documents import MessageDoc
from sayso_common.mongo import MESSAGES, Database, Doc, collection
from sayso_common.views import MESSAGE_PROJECTION

log = logging.getLogger(__name__)

EXPIRED = Counter("sayso_reviews_expired_total", "Reviews closed by the expirer")
LATENESS = Histogram(
    "sayso_expirer_lateness_seconds",
    "How long after its deadline a due review was found",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0),
)

# Served by the partial index ``pending_reviews_by_deadline``.
_PENDING: Doc = {"review.status": "pending", "review.expires_at": {"$type": "date"}}


async def expire_due(db: Database, now: datetime, batch: int, parallel: int = 4) -> tuple[int, int]:
    """Expire up to ``batch`` overdue reviews. Returns (found, expired by this call).

    The batch is written as ``parallel`` unordered bulk writes at once: MongoDB applies one bulk
    write's updates one after another, so a single stream of 1,000 left its other threads idle
    (10,000 due reviews took 5.2 s to expire that way)."""
    due = await (
        collection(db, MESSAGES)
        .find(
            {"review.status": "pending", "review.expires_at": {"$lte": now}},
            MESSAGE_PROJECTION,
        )
        .sort("review.expires_at", 1)
        .limit(batch)
        .to_list()
    )
    if not due:
        return 0, 0
    for doc in due:
        LATENESS.observe(max(0.0, (now - as_utc(doc["review"]["expires_at"])).total_seconds()))
    size = -(-len(due) // max(1, parallel))
    chunks = [due[i : i + size] for i in range(0, len(due), size)]
    modified = sum(await asyncio.gather(*(_expire_chunk(db, chunk, now) for chunk in chunks)))
    EXPIRED.inc(modified)
    return len(due), modified


async def _expire_chunk(db: Database, due: list[MessageDoc], now: datetime) -> int:
    try:
        result = await collection(db, MESSAGES).bulk_write(
            [review_state.expired(d, now) for d in due], ordered=False
        )
        return result.modified_count
    except BulkWriteError as exc:
        # Unordered: the other updates went through. A document that cannot take the update
        # (say, at the size limit) is logged and retried next pass rather than stalling the rest.
        log.error(
            "some reviews could not be expired",
            extra={"errors": [e.get("errmsg") for e in exc.details.get("writeErrors", [])][:5]},
        )
        return int(exc.details.get("nModified", 0))


async def next_deadline(db: Database) -> datetime | None:
    """The earliest deadline still pending, so the loop can wake right at it."""
    doc = await collection(db, MESSAGES).find_one(
        _PENDING,
        {"review.expires_at": 1},
        sort=[("review.expires_at", 1)],
        hint="pending_reviews_by_deadline",
    )
    return as_utc(doc["review"]["expires_at"]) if doc else None
