"""The pull feed (``GET /api/v1/feed``): an account's or a channel's events for clients that
cannot receive webhooks (behind a firewall). The client keeps the cursor; each page answers the
events stored after it, oldest first.

Events are read in the order they were *stored* in ``events`` (by the outbox relay, just after
publishing), not by id: ids sort by creation time, but an event created a moment earlier can be
stored a moment later (sayso_realtime.history says why), and a cursor on ids would step over it
for good. The relay stamps each stored event with ``stored_at`` (events stored before that field
existed are not in the feed; they expire with the retention). An event is served only
once it was stored ``SETTLE`` ago, so an insert stamped earlier but still in flight when a page
was read cannot land behind a cursor a client already holds: at least once, no gaps, and one
channel's events in the order they were published.

An empty page can wait (``wait`` ms, at most 30 s) for the next event: each API process follows
one change stream of stored events and wakes the waiting requests of that account or channel,
which then read again once the new event has settled. Nothing polls the database.

``types`` keeps the events of some types only (names and groups as endpoints take them:
``review:*``). A page with fewer events than its limit has read every settled event there is, so
its cursor moves past the last one read, matching or not: a client that waits for a rare type
does not read the same other events again on every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel

from sayso_api.schemas import Out
from sayso_common import loops
from sayso_common.clock import as_utc, iso, utcnow
from sayso_common.documents import EventDoc
from sayso_common.endpoints import EventTypeError, check_pattern, expand
from sayso_common.errors import ErrorCode, InvalidError
from sayso_common.events import AgentStatusChanged, Event, MessageData, VoteData, shown_to, wire_name
from sayso_common.mongo import EVENTS, Database, Doc, collection, untyped
from sayso_common.outbox import event_from_events_document
from sayso_common.topics import ALL_EVENT_TYPES
from sayso_common.views import seen_by

log = logging.getLogger(__name__)

# How long after it was stored an event is served: longer than an insert stamped by the relay
# takes to become visible, so none lands behind a cursor already handed out.
SETTLE = timedelta(seconds=2)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WAIT_MS = 30_000

_CURSOR = re.compile(r"^(\d{1,15})\.([a-z]{1,10}_[0-9a-z]{26})$")
# Every type the feed serves, as the feed names them (review:responded …).
FEED_TYPES = tuple(wire_name(t) for t in ALL_EVENT_TYPES)
MAX_TYPES_CHARS = 500


class FeedPage(Out):
    data: list[dict[str, Any]] = Field(
        description="Events, oldest first: {id, type (review:responded …), channelId, occurredAt, cursor, data}"
    )
    next_cursor: str | None = Field(
        description="Pass as ?after= for the next page (the one given, when this page is empty)"
    )


def cursor_of(doc: EventDoc) -> str:
    stamp = as_utc(doc["stored_at"])
    return f"{int(stamp.timestamp() * 1000)}.{doc['_id']}"


def parse_cursor(value: str) -> tuple[datetime, str]:
    found = _CURSOR.match(value)
    if found is None:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, "not a cursor this feed handed out", "after")
    return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC), found.group(2)


def parse_types(value: str | None) -> list[str] | None:
    """``types=review:*,agent:status`` as the stored types it covers (``review.responded`` …);
    None: every type. 422 naming ``types`` for a name or group the feed does not know."""
    if value is None:
        return None
    patterns = [part.strip() for part in value.split(",")]
    try:
        for pattern in patterns:
            check_pattern(pattern, FEED_TYPES)
    except EventTypeError as exc:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, str(exc), "types") from None
    return [name.replace(":", ".") for name in expand(patterns, FEED_TYPES)]


def item(event: Event, cursor: str, reader_id: str) -> dict[str, Any]:
    """One event as the feed shows it: the message as the API shows it to ``reader_id``."""
    data: dict[str, Any]
    if isinstance(event.data, MessageData | VoteData):
        message = seen_by(event.data.message, event.owner_id, reader_id).model_dump(mode="json")
        data = {"message": message}
        if isinstance(event.data, VoteData):
            data["vote"] = event.data.vote.model_dump(mode="json")
    else:
        data = {to_camel(k): v for k, v in event.data.model_dump(mode="json").items()}
        if isinstance(event, AgentStatusChanged):
            data["channelId"] = event.channel_id
    return {
        "id": event.id,
        "type": wire_name(event.type),
        "channelId": event.channel_id,
        "occurredAt": iso(event.occurred_at),
        "cursor": cursor,
        "data": data,
    }


def _after(after: str | None) -> Doc:
    if after is None:
        return {}
    stamp, last_id = parse_cursor(after)
    return {"$or": [{"stored_at": {"$gt": stamp}}, {"stored_at": stamp, "_id": {"$gt": last_id}}]}


async def page(
    db: Database,
    scope: Doc,
    reader_id: str,
    after: str | None,
    limit: int = DEFAULT_LIMIT,
    types: list[str] | None = None,
) -> FeedPage:
    """The events of ``scope`` (``{"owner_id": …}`` or ``{"channel_id": …}``) after the cursor,
    of ``types`` only if given (stored names: ``review.responded``)."""
    # One bound for both reads below: every event stored up to it is visible to both.
    settled: Doc = {**scope, "stored_at": {"$lte": utcnow() - SETTLE}, **_after(after)}
    query = settled if types is None else {**settled, "type": {"$in": types}}
    docs = (
        await collection(db, EVENTS).find(query).sort([("stored_at", 1), ("_id", 1)]).limit(limit).to_list()
    )
    cursor = cursor_of(docs[-1]) if docs else after
    if types is not None and len(docs) < limit:
        # Every settled event after the cursor was looked at: move past the last of them.
        last = await collection(db, EVENTS).find_one(
            settled, {"stored_at": 1}, sort=[("stored_at", -1), ("_id", -1)]
        )
        if last is not None:
            cursor = cursor_of(last)
    data: list[dict[str, Any]] = []
    for doc in docs:
        try:
            event = event_from_events_document(doc)
        except ValidationError:
            # A type this version does not know (stored by a newer one): passed over, not a 500.
            log.warning("feed skipped an unreadable stored event", extra={"event_id": doc["_id"]})
            continue
        if shown_to(event, reader_id):
            data.append(item(event, cursor_of(doc), reader_id))
    return FeedPage(data=data, next_cursor=cursor)


async def _settles_in(db: Database, scope: Doc, after: str | None, types: list[str] | None) -> float | None:
    """Seconds until the first event (of ``types``) after the cursor that is stored but not served
    yet may be served; None when there is none."""
    kinds: Doc = {} if types is None else {"type": {"$in": types}}
    first = await collection(db, EVENTS).find_one(
        {**scope, "stored_at": {"$exists": True}, **kinds, **_after(after)},
        {"stored_at": 1},
        sort=[("stored_at", 1), ("_id", 1)],
    )
    if first is None:
        return None
    ready = as_utc(first["stored_at"]) + SETTLE
    return max(0.0, (ready - utcnow()).total_seconds())


class FeedWaiters:
    """The feed's long-polls of one API process, woken by one change stream of stored events."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def listen(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever an event of ``key`` (``owner:<id>`` or ``channel:<id>``) is stored."""
        woken = asyncio.Event()
        self._waiting.setdefault(key, set()).add(woken)
        try:
            yield woken
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self._waiting[key]

    def _wake(self, key: str) -> None:
        for woken in self._waiting.get(key, ()):
            woken.set()

    def _wake_all(self) -> None:
        # A stream that was not open may have missed inserts: every waiter reads again.
        for waiting in self._waiting.values():
            for woken in waiting:
                woken.set()

    def _stored(self, change: Any) -> None:
        doc = change.get("fullDocument") or {}
        self._wake(f"owner:{doc.get('owner_id')}")
        self._wake(f"channel:{doc.get('channel_id')}")

    async def follow(self) -> None:
        """Runs until cancelled."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"fullDocument.owner_id": 1, "fullDocument.channel_id": 1}},
        ]
        await loops.watch(
            untyped(self._db, EVENTS),
            pipeline,
            self._stored,
            what="feed change stream",
            on_open=self._wake_all,
        )


async def wait_page(
    db: Database,
    waiters: FeedWaiters,
    scope: Doc,
    reader_id: str,
    after: str | None,
    limit: int,
    wait_ms: int,
    types: list[str] | None = None,
) -> FeedPage:
    """:func:`page`, but an empty one waits up to ``wait_ms`` for an event to serve."""
    deadline = time.monotonic() + wait_ms / 1000
    key = f"owner:{scope['owner_id']}" if "owner_id" in scope else f"channel:{scope['channel_id']}"
    with waiters.listen(key) as woken:
        while True:
            woken.clear()  # before reading: an event stored from here on sets it again
            result = await page(db, scope, reader_id, after, limit, types)
            left = deadline - time.monotonic()
            if result.data or left <= 0:
                return result
            after = result.next_cursor  # past the events of other types read so far
            settling = await _settles_in(db, scope, after, types)
            if settling is not None:
                await asyncio.sleep(min(left, settling + 0.01))
                continue
            try:
                await asyncio.wait_for(woken.wait(), left)
            except TimeoutError:
                return result
