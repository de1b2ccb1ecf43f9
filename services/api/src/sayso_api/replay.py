"""Recover and replay for one webhook endpoint (:mod:`sayso_api.endpoints`).

*Recover* re-queues the endpoint's failed deliveries since a time: the same documents, so the
receiver sees the same ``webhook-id`` (:func:`sayso_api.webhooks.recover_failed`, shared with the
agent's recover).

*Replay* walks the channel's (an account endpoint: the account's) stored events in a time range
and gives the endpoint the delivery the dispatcher would have made for each event it matches
(:func:`sayso_common.endpoints.wanted`, :func:`sayso_common.webhook_bodies.body_for`,
:func:`sayso_common.deliveries.new_delivery`). Idempotent per (event, endpoint): a delivery that
exists is re-queued if it failed and left alone otherwise, so a second replay sends nothing new.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, ValidationError

from sayso_api.endpoints import get_endpoint
from sayso_api.feed import cursor_of, parse_cursor
from sayso_api.schemas import Out, _StrictIn
from sayso_api.webhooks import RecoverOut, recover_failed, requeue_deliveries
from sayso_common.clock import as_utc, utcnow
from sayso_common.deliveries import new_delivery
from sayso_common.documents import DeliveryDoc, EndpointDoc
from sayso_common.endpoints import (
    compile_endpoint_filter,
    deliverable,
    filter_document,
    message_id_of,
    stored_filter,
    wanted,
)
from sayso_common.errors import ConflictError, ErrorCode, InvalidError
from sayso_common.events import Event, wire_name
from sayso_common.mongo import AGENTS, DELIVERIES, EVENTS, Database, Doc, collection, insert_new
from sayso_common.outbox import event_from_events_document
from sayso_common.webhook_bodies import body_for, render

log = logging.getLogger(__name__)

# Stored events read per replay call; the answer's ``nextCursor`` continues.
REPLAY_LIMIT = 1000


class RecoverIn(_StrictIn):
    since: datetime | None = Field(default=None, description="Failed since (ISO 8601); default 24 h ago")


class ReplayIn(_StrictIn):
    start: datetime = Field(alias="from", description="Events stored at or after this time (ISO 8601)")
    end: datetime = Field(alias="to", description="…and before this time")
    after: str | None = Field(default=None, description="The nextCursor of the previous call, to continue")


class ReplayOut(Out):
    queued: int = Field(description="New deliveries made for events the endpoint had not been sent")
    requeued: int = Field(description="Failed deliveries of these events, sent again (same webhook-id)")
    skipped: int = Field(description="Events the endpoint already has a delivery for (left alone)")
    scanned: int = Field(description="Stored events read, matching or not")
    more: bool = Field(description="True if the range holds more events: call again with after=nextCursor")
    next_cursor: str | None = Field(default=None, description="Pass as after to continue")


async def recover(
    db: Database, owner_id: str, channel_id: str | None, endpoint_id: str, since: datetime | None
) -> RecoverOut:
    await get_endpoint(db, owner_id, channel_id, endpoint_id)  # 404 unless the caller owns it
    return await recover_failed(db, {"endpoint_id": endpoint_id, "owner_id": owner_id}, since)


def _check_range(body: ReplayIn, retention: timedelta, now: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(body.start), as_utc(body.end)
    if end <= start:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, "to must be later than from", "to")
    oldest = now - retention
    if start < oldest:
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR,
            f"from is before the retention ({retention.days} days): events that old are gone",
            "from",
        )
    return start, end


async def replay(
    db: Database,
    owner_id: str,
    channel_id: str | None,
    endpoint_id: str,
    body: ReplayIn,
    retention: timedelta,
    limit: int = REPLAY_LIMIT,
) -> ReplayOut:
    endpoint = await get_endpoint(db, owner_id, channel_id, endpoint_id)
    now = utcnow()
    start, end = _check_range(body, retention, now)
    if endpoint.get("disabled"):
        raise ConflictError(
            ErrorCode.ENDPOINT_DISABLED, "the endpoint is disabled: enable it to replay to it"
        )
    query: Doc = {"owner_id": owner_id, "stored_at": {"$gte": start, "$lt": end}}
    if channel_id is not None:
        query["channel_id"] = channel_id
    if body.after is not None:
        stamp, last_id = parse_cursor(body.after)
        query["$or"] = [{"stored_at": {"$gt": stamp}}, {"stored_at": stamp, "_id": {"$gt": last_id}}]
    docs = (
        await collection(db, EVENTS)
        .find(query)
        .sort([("stored_at", 1), ("_id", 1)])
        .limit(limit + 1)
        .to_list()
    )
    more = len(docs) > limit
    docs = docs[:limit]
    events = [e for e in map(_readable, docs) if e is not None and _matches(endpoint, e)]
    queued, requeued, skipped = await _deliver(db, endpoint, events, now)
    return ReplayOut(
        queued=queued,
        requeued=requeued,
        skipped=skipped,
        scanned=len(docs),
        more=more,
        next_cursor=cursor_of(docs[-1]) if more else None,
    )


def _readable(doc: Any) -> Event | None:
    try:
        return event_from_events_document(doc)
    except ValidationError:
        # A type this version does not know (stored by a newer one): passed over, not a 500.
        log.warning("replay skipped an unreadable stored event", extra={"event_id": doc["_id"]})
        return None


def _matches(endpoint: EndpointDoc, event: Event) -> bool:
    """The dispatcher's rule: the endpoint's types and filter want it, and its format has a body."""
    if not deliverable(event):
        return False
    compiled = compile_endpoint_filter(stored_filter(endpoint))
    if not wanted(endpoint, wire_name(event.type), compiled, lambda: filter_document(event)):
        return False
    return body_for(event, endpoint.get("format") or "placet") is not None


async def _deliver(
    db: Database, endpoint: EndpointDoc, events: list[Event], now: datetime
) -> tuple[int, int, int]:
    """(queued, requeued, skipped) for ``events``, each wanted by ``endpoint``."""
    if not events:
        return 0, 0, 0
    deliveries = collection(db, DELIVERIES)
    existing = await deliveries.find(
        {"endpoint_id": endpoint["_id"], "event_id": {"$in": [e.id for e in events]}},
        {"outbox": 0, "attempts": 0, "body": 0},
    ).to_list()
    have = {d["event_id"] for d in existing}
    failed = [d for d in existing if d["state"] == "failed"]
    await requeue_deliveries(db, failed, now)
    schedules = await _schedules(db, {e.channel_id for e in events if e.id not in have})
    new: list[DeliveryDoc] = []
    for event in events:
        if event.id in have:
            continue
        content = body_for(event, endpoint.get("format") or "placet")
        assert content is not None, "matched events have a body"
        doc = new_delivery(
            event_id=event.id,
            event_type=event.type,
            channel_id=event.channel_id,
            owner_id=event.owner_id,
            message_id=message_id_of(event),
            url=endpoint["url"],
            source="endpoint",
            headers_enc=endpoint.get("headers_enc"),
            endpoint_id=endpoint["_id"],
            body=render(content),
            schedule=schedules.get(event.channel_id),
            now=now,
            due_at=now,
            claim=None,
            event_at=event.occurred_at,
        )
        doc["requeued_at"] = now  # wakes the dispatchers' change streams at once
        new.append(doc)
    # The unique index (event, endpoint, URL) settles a race with a concurrent replay.
    inserted = await insert_new(deliveries, new)
    return len(inserted), len(failed), len(events) - len(inserted) - len(failed)


async def _schedules(db: Database, channel_ids: set[str]) -> dict[str, list[int]]:
    """The channels whose agent has a retry schedule of its own, and that schedule. The others'
    deliveries carry none: the dispatcher that sends them uses its SAYSO_DISPATCHER_RETRY_SCHEDULE,
    as it does for the deliveries it makes itself (the API does not know that setting)."""
    if not channel_ids:
        return {}
    agents = (
        await collection(db, AGENTS)
        .find({"_id": {"$in": sorted(channel_ids)}, "retry_schedule": {"$ne": None}}, {"retry_schedule": 1})
        .to_list()
    )
    return {a["_id"]: list(own) for a in agents if (own := a.get("retry_schedule")) is not None}
