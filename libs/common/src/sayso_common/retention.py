"""Retention (``SAYSO_RETENTION_DAYS``): how long finished work is kept before MongoDB's TTL
monitor removes it.

- **Deliveries** (one per event x URL, with the exact body sent and every attempt's response
  excerpt, :mod:`sayso_common.deliveries`) and **notifications** (the notifier's e-mails and
  Slack messages with their attempts, :mod:`sayso_common.notifications`) are removed that long
  after they became final. The TTL indexes are partial on the final states and count from
  ``updated_at``, which every write that finishes one sets: a delivery still pending — however
  long its retry schedule (``sayso_common.attempts.WEBHOOK_SCHEDULE``, an agent's own) — is not in
  the index and cannot expire, and a manual retry or a recovery that makes a final one pending
  again takes it back out. Documents stored before this existed carry both fields already, so
  nothing needs a backfill. A sent notification's answer links work until its review closes: its
  TTL is never shorter than the longest review deadline.
- **Stored events** (the ``events`` collection: resume, long-poll history, the dispatcher's
  reconciliation) carry an ``expire_at`` the outbox relay sets when it stores them, to the same
  retention (:class:`sayso_common.outbox.OutboxRelay`'s ``retention``); a change of the setting
  applies to events stored after it. Every relay (the API's, the dispatcher's) must run with the
  same setting: realtime's resume reads ``expire_at`` as "when stored" plus one constant
  (:mod:`sayso_realtime.history`).

- **Incidents** (:mod:`sayso_common.incidents`, the operator events' once-per-incident record) are
  removed that long after they were resolved; an open one is kept.

The audit log keeps its own ``SAYSO_AUDIT_RETENTION_DAYS`` (:func:`sayso_common.audit.ensure_retention`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure

from sayso_common.mongo import DELIVERIES, INCIDENTS, NOTIFICATIONS, Database, untyped

log = logging.getLogger(__name__)

DAY: Final = 24 * 3600
# The final states (explicit, not "anything but pending": a state added later is kept until
# someone decides it is final).
FINAL_DELIVERY_STATES: Final = ("delivered", "failed")
FINAL_NOTIFICATION_STATES: Final = ("sent", "failed", "cancelled", "skipped")

DELIVERIES_INDEX: Final = "deliveries_retention"
NOTIFICATIONS_INDEX: Final = "notifications_retention"
INCIDENTS_INDEX: Final = "incidents_retention"


@dataclass(frozen=True)
class Ttl:
    """One TTL index: on ``field`` of ``collection``'s documents in ``partial``."""

    collection: str
    name: str
    field: str
    partial: dict[str, Any]
    seconds: int

    def model(self) -> IndexModel:
        return IndexModel(
            [(self.field, ASCENDING)],
            name=self.name,
            expireAfterSeconds=self.seconds,
            partialFilterExpression=self.partial,
        )


def retention(days: int) -> timedelta:
    return timedelta(days=days)


def ttls(days: int, review_max_ttl_seconds: int = 0) -> list[Ttl]:
    """The TTL indexes a retention of ``days`` asks for. ``review_max_ttl_seconds`` (the API's
    longest review deadline) is the least a sent notification is kept: its answer links must find
    it until its review closes."""
    seconds = days * DAY
    return [
        Ttl(
            DELIVERIES,
            DELIVERIES_INDEX,
            "updated_at",
            {"state": {"$in": list(FINAL_DELIVERY_STATES)}},
            seconds,
        ),
        Ttl(
            NOTIFICATIONS,
            NOTIFICATIONS_INDEX,
            "updated_at",
            {"state": {"$in": list(FINAL_NOTIFICATION_STATES)}},
            max(seconds, review_max_ttl_seconds),
        ),
        # A resolved incident only keeps the history of its target; an open one is never in the
        # index (its operator event may still be in its outbox, and it must not be told again).
        Ttl(INCIDENTS, INCIDENTS_INDEX, "updated_at", {"state": "resolved"}, seconds),
    ]


async def ensure(db: Database, days: int, review_max_ttl_seconds: int = 0) -> None:
    """Create the retention's TTL indexes, or bring them to ``days`` (idempotent; several
    processes may run it at once)."""
    for ttl in ttls(days, review_max_ttl_seconds):
        await ensure_ttl(db, ttl)


async def ensure_ttl(db: Database, ttl: Ttl) -> None:
    """Create ``ttl``'s index; one with another expiry is changed in place (``collMod``, no
    rebuild), one on another field or filter is rebuilt."""
    coll = untyped(db, ttl.collection)
    existing = {ix["name"]: ix async for ix in await coll.list_indexes()}
    current = existing.get(ttl.name)
    if current is not None and (
        dict(current["key"]) != {ttl.field: ASCENDING}
        or dict(current.get("partialFilterExpression") or {}) != ttl.partial
    ):
        await coll.drop_index(ttl.name)
        current = None
    if current is None:
        try:
            await coll.create_indexes([ttl.model()])
        except OperationFailure as exc:  # a replica starting at the same time made it
            if exc.code not in (85, 86):
                raise
            await ensure_ttl(db, ttl)
        return
    if current.get("expireAfterSeconds") != ttl.seconds:
        log.info("retention of %s changed to %s s", ttl.collection, ttl.seconds)
        await db.command(
            {"collMod": ttl.collection, "index": {"name": ttl.name, "expireAfterSeconds": ttl.seconds}}
        )
