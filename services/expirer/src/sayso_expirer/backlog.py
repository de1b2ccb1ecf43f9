"""Backlog metrics read from MongoDB, for dashboards and alerts: pending reviews (how many, how
old the oldest is, how many fall due soon), the outbox (its oldest unpublished event, wherever it
waits), and how long humans take to answer.

They live in the expirer because it already watches the review deadlines and no other service
owns "the whole backlog". Every expirer replica computes the same numbers from the same data:
aggregate them across replicas with ``max`` (gauges) or ``max by (le)`` (the histogram), never
``sum``.

The outbox age here is read from the documents themselves, so it keeps growing while Kafka is
down (the relay's own ``sayso_outbox_oldest_age_seconds`` is only updated by passes that reach
the broker).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from sayso_common import loops, outbox
from sayso_common.clock import as_utc, utcnow
from sayso_common.ids import id_time_ms
from sayso_common.mongo import MESSAGES, Database, untyped

log = logging.getLogger(__name__)

# "Near expiry": deadlines closer than this count in sayso_reviews_expiring_soon.
EXPIRING_SOON_SECONDS = 900
REFRESH_SECONDS = 15.0

PENDING = Gauge("sayso_reviews_pending", "Reviews waiting for a human answer")
OLDEST_PENDING = Gauge(
    "sayso_reviews_oldest_pending_age_seconds", "Age of the oldest pending review (0 when none)"
)
EXPIRING_SOON = Gauge(
    "sayso_reviews_expiring_soon",
    f"Pending reviews whose deadline is less than {EXPIRING_SOON_SECONDS} s away",
)
OUTBOX_OLDEST = Gauge(
    "sayso_outbox_backlog_oldest_age_seconds",
    "Age of the oldest event still waiting in any outbox, read from MongoDB (0 when none)",
)
OUTBOX_DOCUMENTS = Gauge("sayso_outbox_backlog_documents", "Documents holding unpublished outbox events")
OUTBOX_DEAD_LETTERS = Gauge(
    "sayso_outbox_backlog_dead_letters",
    "Outbox entries the relay moved aside instead of publishing (collection outbox_dead_letters)",
)
RESPONSE_SECONDS = Histogram(
    "sayso_review_response_seconds",
    "From a review's creation to the human's answer",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 129600),
)
REFRESH_ERRORS = Counter(
    "sayso_backlog_refresh_errors_total", "Backlog metric refreshes that failed (MongoDB unreachable)"
)

# Served by the partial index ``pending_reviews_by_deadline`` (as the expiry queries are).
_PENDING: dict[str, Any] = {"review.status": "pending", "review.expires_at": {"$type": "date"}}


def _updated(field: str) -> dict[str, Any]:
    # updatedFields keys are dotted paths ("review.status"); $getField reads such a key literally.
    return {"$getField": {"field": field, "input": "$updateDescription.updatedFields"}}


# The API's respond() sets review.status to "completed" together with review.completed_at.
_ANSWERS: list[dict[str, Any]] = [
    {"$match": {"operationType": "update", "$expr": {"$eq": [_updated("review.status"), "completed"]}}},
    {"$project": {"documentKey": 1, "completed_at": _updated("review.completed_at")}},
]


async def refresh_reviews(db: Database, now: datetime) -> None:
    soon = now + timedelta(seconds=EXPIRING_SOON_SECONDS)
    rows = await (
        await untyped(db, MESSAGES).aggregate(
            [
                {"$match": _PENDING},
                {
                    "$group": {
                        "_id": None,
                        "n": {"$sum": 1},
                        "oldest": {"$min": "$created_at"},
                        "soon": {"$sum": {"$cond": [{"$lte": ["$review.expires_at", soon]}, 1, 0]}},
                    }
                },
            ],
            hint="pending_reviews_by_deadline",
        )
    ).to_list()
    row: dict[str, Any] = rows[0] if rows else {"n": 0, "oldest": None, "soon": 0}
    PENDING.set(int(row["n"]))
    EXPIRING_SOON.set(int(row["soon"]))
    oldest = row["oldest"]
    age = (now - as_utc(oldest)).total_seconds() if isinstance(oldest, datetime) else 0.0
    OLDEST_PENDING.set(max(0.0, age))


async def refresh_outbox(db: Database, now: datetime) -> None:
    waiting = await outbox.backlog(db, now)
    OUTBOX_DOCUMENTS.set(waiting.documents)
    OUTBOX_OLDEST.set(waiting.oldest_age_seconds)
    OUTBOX_DEAD_LETTERS.set(waiting.dead_letters)


def response_seconds(message_id: Any, completed_at: Any) -> float | None:
    """Seconds from the message's creation (its id carries the time) to the answer, or None for
    anything that does not look like one of ours."""
    if not isinstance(message_id, str) or not isinstance(completed_at, datetime):
        return None
    try:
        created_ms = id_time_ms(message_id)
    except ValueError:
        return None
    seconds = as_utc(completed_at).timestamp() - created_ms / 1000
    # Reviews live at most 36 h; anything outside [0, 2 days] is not a timestamp we made.
    return seconds if 0 <= seconds <= 2 * 86400 else None


async def watch_answers(db: Database) -> None:
    """Observe every review answer as it happens (a change stream on messages)."""

    def observe(change: loops.Change) -> None:
        seconds = response_seconds(change["documentKey"].get("_id"), change.get("completed_at"))
        if seconds is not None:
            RESPONSE_SECONDS.observe(seconds)

    await loops.watch(untyped(db, MESSAGES), _ANSWERS, observe, what="answer change stream")


async def refresh(db: Database) -> None:
    now = utcnow()
    await refresh_reviews(db, now)
    await refresh_outbox(db, now)


async def refresh_loop(db: Database, period: float = REFRESH_SECONDS) -> None:
    await loops.every("backlog metrics refresh", period, lambda: refresh(db), on_error=REFRESH_ERRORS.inc)


async def run(db: Database) -> None:
    """Both loops, until cancelled (the expirer's lifespan starts and cancels this)."""
    async with asyncio.TaskGroup() as group:
        group.create_task(refresh_loop(db), name="backlog-refresh")
        group.create_task(watch_answers(db), name="answer-watch")
