"""What a reconnecting client missed, given the last event id it saw.

Event ids sort by creation time, but events are not *published* strictly in id order: an event
created a moment earlier can reach Kafka a moment later (another request's write committed
first, or the relay's next pass picked it up). So "ids after the last one seen" alone would miss
those. Nor does a gateway hand events on in the order the relay stored them: it reads Kafka
partition by partition, so of two events published together (one relay batch, stored in the
same millisecond) the one stored later can reach the client first, and a client whose connection
died between the two has seen the later one only.

The rule here: an event may have been missed if its id is greater than the last one seen, or if
it was stored after ``STORED_OVERLAP`` before it (the relay stamps each stored event with
``stored_at``; older documents carry only ``expire_at``, that stamp plus a day then). A gateway
hands an event on well within that overlap of the events stored around it, so a client whose
last event was L has nothing missing outside that set; the events of the overlap it already had
come again, and clients drop repeats by event id (the docs say so). Stored-after is only looked for among ids of the
preceding minute, which is far more than any publication delay and keeps the query on the
(owner_id, _id) index (and the (channel_id, _id) one for channels shared with a user).

The relay stores each event just *after* publishing it, so for a few milliseconds an event can be
live but not stored yet. The events this process consumed recently are kept in memory, in the
order consumed, and merged in; and a resuming client subscribes to live events before reading
any of this, so every event is either in what it reads or still to come live.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from sayso_common.clock import utcnow
from sayso_common.documents import EventDoc
from sayso_common.events import Event
from sayso_common.ids import id_time_ms, min_id
from sayso_common.membership import Reach
from sayso_common.mongo import EVENTS, Database, Doc, collection
from sayso_common.outbox import event_from_events_document

_EVENT_ID = re.compile(r"^evt_[0-9a-z]{26}$")
# How far before the last seen id to look for events published after it.
REORDER_WINDOW_MS = 60_000
# How long before the last seen event's storage an event counts as possibly not yet seen. The
# gap between two events' storage and their hand-on by a gateway is one Kafka fetch apart at most
# (milliseconds; seconds under a backlog); this is far more, and costs a resuming client repeats of
# what it saw in the last seconds before its last event.
STORED_OVERLAP = timedelta(seconds=10)
# What the relays before ``stored_at`` added to the storage time to make ``expire_at``.
UNSTAMPED_RETENTION = timedelta(days=1)


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


def _stored_just_before(last_id: str, anchor: EventDoc) -> Doc:
    """Events with a smaller id than ``last_id`` stored no earlier than ``STORED_OVERLAP`` before
    it (``anchor``: its stored document): what a client whose last event was it may not have
    seen. Only ids of the preceding ``REORDER_WINDOW_MS`` are looked at (the index range)."""
    ids = {"$gt": min_id("evt", id_time_ms(last_id) - REORDER_WINDOW_MS), "$lt": last_id}
    stored_at = anchor.get("stored_at")
    if stored_at is None:  # stored before stamps: every relay added the same fixed retention
        return {"_id": ids, "expire_at": {"$gt": anchor["expire_at"] - STORED_OVERLAP}}
    # The stamp, not expire_at: relays may keep events for different times (a rolling change of
    # SAYSO_RETENTION_DAYS, or the setting given to one service only). A relay of the release
    # before stamps (a rolling upgrade) stored with expire_at one fixed day on.
    since = stored_at - STORED_OVERLAP
    return {
        "_id": ids,
        "$or": [
            {"stored_at": {"$gt": since}},
            {"stored_at": {"$exists": False}, "expire_at": {"$gt": since + UNSTAMPED_RETENTION}},
        ],
    }


async def stored_after(db: Database, last_id: str, limit: int) -> list[Event]:
    """Every owner's events with a greater id than ``last_id`` or stored around or after it (the
    rule of :func:`events_since`), in id order, at most ``limit``: what a broker that lost its
    data may have dropped before this process read it."""
    query: Doc = {"_id": {"$gt": last_id}}
    anchor = await collection(db, EVENTS).find_one({"_id": last_id}, {"expire_at": 1, "stored_at": 1})
    if anchor is not None:
        query = {"$or": [query, _stored_just_before(last_id, anchor)]}
    docs = await collection(db, EVENTS).find(query).sort("_id", 1).limit(limit).to_list()
    return [event_from_events_document(doc) for doc in docs]


@dataclass(frozen=True)
class Replay:
    """What a resuming client is sent: the events stored around its last one that it may not have
    seen (most of them repeats), then the ones after it in id order. ``complete`` is False when
    more followed than one replay sends: the client is to come back from the last one it got, which
    is then further on, since the newer events come last."""

    events: list[Event]
    complete: bool


async def events_since(
    db: Database,
    recent: RecentEvents,
    reach: Reach,
    last_id: str,
    channels: frozenset[str] | None,
    window: timedelta,
    limit: int,
) -> Replay:
    """Events of the channels ``reach`` covers (optionally of some of them) the client may have
    missed after ``last_id``, within the resume window: at most ``limit`` with a greater id, and
    those stored around it (at most as many again)."""
    scope = reach.scope()
    base: Doc = {"$and": [scope], "occurred_at": {"$gte": utcnow() - window}}
    if channels is not None:
        base["channel_id"] = {"$in": sorted(channels)}
    stored = collection(db, EVENTS)
    anchor, newer_docs = await asyncio.gather(
        stored.find_one({"_id": last_id, **scope}, {"expire_at": 1, "stored_at": 1}),
        stored.find({**base, "_id": {"$gt": last_id}}).sort("_id", 1).limit(limit).to_list(),
    )
    around: list[EventDoc] = []
    if anchor is not None:
        around = (
            await stored.find({**base, **_stored_just_before(last_id, anchor)})
            .sort("_id", -1)  # past the limit, the ones nearest the last seen are kept
            .limit(limit)
            .to_list()
        )
    older = {doc["_id"]: event_from_events_document(doc) for doc in around}
    newer = {doc["_id"]: event_from_events_document(doc) for doc in newer_docs}
    for event in recent.after(reach, last_id):
        if channels is None or event.channel_id in channels:
            (newer if event.id > last_id else older).setdefault(event.id, event)
    kept = sorted(newer)[:limit]
    return Replay(
        [older[key] for key in sorted(older)] + [newer[key] for key in kept],
        complete=len(newer_docs) < limit and len(newer) <= limit,
    )
