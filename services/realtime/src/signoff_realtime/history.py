"""What a reconnecting client missed, given the last event id it saw.

Event ids sort by creation time, but events are not *published* strictly in id order: an event
created a moment earlier can reach Kafka a moment later (another request's write committed
first, or the relay's next pass picked it up). So "ids after the last one seen" alone would miss
those. The rule here: an event was missed if its id is greater than the last one seen, or if it
was stored after it (the relay stamps each stored event; the events collection's ``expire_at`` is
that stamp plus a constant retention) — a client whose last event was L cannot have seen anything
published after L. Stored-after is only looked for among ids of the preceding minute, which is
far more than any publication delay and keeps the query on the (owner_id, _id) index (and the
(channel_id, _id) one for channels shared with a user).

The relay stores each event just *after* publishing it, so for a few milliseconds an event can be
live but not stored yet. The events this process consumed recently are kept in memory, in the
order consumed, and merged in; and a resuming client subscribes to live events before reading
any of this, so every event is either in what it reads or still to come live.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import timedelta

from signoff_common.clock import utcnow
from signoff_common.events import Event
from signoff_common.ids import id_time_ms, min_id
from signoff_common.membership import Reach
from signoff_common.mongo import EVENTS, Database, Doc, collection
from signoff_common.outbox import event_from_events_document

_EVENT_ID = re.compile(r"^evt_[0-9a-z]{26}$")
# How far before the last seen id to look for events published after it.
REORDER_WINDOW_MS = 60_000


def valid_event_id(value: object) -> bool:
    return isinstance(value, str) and bool(_EVENT_ID.match(value))


class RecentEvents:
    """The last events this process consumed, in the order it consumed them."""

    def __init__(self, capacity: int) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)

    def add(self, event: Event) -> None:
        self._events.append(event)

    def after(self, reach: Reach, last_id: str) -> list[Event]:
        """The events of the channels ``reach`` covers with a greater id than ``last_id`` or
        consumed after it."""
        out: list[Event] = []
        passed = False
        for event in self._events:
            if event.id == last_id:
                passed = True
            elif reach.covers(event.owner_id, event.channel_id) and (passed or event.id > last_id):
                out.append(event)
        return out


async def stored_after(db: Database, last_id: str, limit: int) -> list[Event]:
    """Every owner's events with a greater id than ``last_id`` or stored after it (the same rule as
    :func:`events_since`), in id order, at most ``limit``: what a broker that lost its data may
    have dropped before this process read it."""
    query: Doc = {"_id": {"$gt": last_id}}
    anchor = await collection(db, EVENTS).find_one({"_id": last_id}, {"expire_at": 1})
    if anchor is not None:
        query = {
            "_id": {"$gt": min_id("evt", id_time_ms(last_id) - REORDER_WINDOW_MS), "$ne": last_id},
            "$or": [{"_id": {"$gt": last_id}}, {"expire_at": {"$gt": anchor["expire_at"]}}],
        }
    docs = await collection(db, EVENTS).find(query).sort("_id", 1).limit(limit).to_list()
    return [event_from_events_document(doc) for doc in docs]


async def events_since(
    db: Database,
    recent: RecentEvents,
    reach: Reach,
    last_id: str,
    channels: frozenset[str] | None,
    window: timedelta,
    limit: int,
) -> list[Event]:
    """Events of the channels ``reach`` covers (optionally of some of them) the client missed
    after ``last_id``, within the resume window, in id order, at most ``limit`` of them."""
    scope = reach.scope()
    query: Doc = {"$and": [scope], "occurred_at": {"$gte": utcnow() - window}}
    anchor = await collection(db, EVENTS).find_one({"_id": last_id, **scope}, {"expire_at": 1})
    if anchor is None:
        query["_id"] = {"$gt": last_id}
    else:
        query["_id"] = {"$gt": min_id("evt", id_time_ms(last_id) - REORDER_WINDOW_MS), "$ne": last_id}
        query["$or"] = [{"_id": {"$gt": last_id}}, {"expire_at": {"$gt": anchor["expire_at"]}}]
    if channels is not None:
        query["channel_id"] = {"$in": sorted(channels)}
    docs = await collection(db, EVENTS).find(query).sort("_id", 1).limit(limit).to_list()
    merged = {doc["_id"]: event_from_events_document(doc) for doc in docs}
    for event in recent.after(reach, last_id):
        if channels is None or event.channel_id in channels:
            merged.setdefault(event.id, event)
    return [merged[key] for key in sorted(merged)][:limit]
