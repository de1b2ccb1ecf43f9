"""``GET /api/v1/events``: the events of the caller's channels (and, for a user, of the channels
shared with them, kept current: see :mod:`sayso_realtime.shared_channels`) as a
``text/event-stream``.

Each event is one frame: ``id:`` (the event id, which the browser's EventSource sends back as
``Last-Event-ID`` when it reconnects), ``event:`` (``review:responded`` …) and ``data:`` (the
same JSON a socket receives). A comment line every few seconds keeps proxies from closing an
idle stream and lets the server notice a client that left.

A stream whose credential stops holding (a revoked API key, an expired token, a removed user; see
:mod:`sayso_realtime.revocation`) gets one last frame, ``event: error`` with
``{"code": "credentials_revoked", "message": …}`` and no ``id:`` (it is not an event to resume
from), and ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sayso_common.events import Event, shown_to
from sayso_common.membership import Reach
from sayso_common.mongo import Database
from sayso_common.principals import Principal
from sayso_realtime.fanout import Fanout
from sayso_realtime.history import events_since
from sayso_realtime.metrics import DROPPED_STREAMS, REPLAYED, STREAMS
from sayso_realtime.payloads import event_name, payload
from sayso_realtime.quotas import Place
from sayso_realtime.revocation import CODE, CredentialWatch
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.shared_channels import SharedChannels

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Response(StreamingResponse):
    """The stream's response; its owner's place in the stream quota is given back when the
    response ends, however it ends (even if the client left before the first byte, when the
    body generator never starts and its own ``finally`` never runs)."""

    def __init__(self, body: AsyncIterator[str], place: Place) -> None:
        super().__init__(body, media_type="text/event-stream", headers=HEADERS)
        self._place = place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._place.release()


# How long a browser waits before reconnecting after the stream drops.
RETRY_MS = 2000


def frame(event: Event, reader_id: str) -> str:
    """The event as an SSE frame for ``reader_id``; empty when it is not theirs to see."""
    if not shown_to(event, reader_id):
        return ""
    data = json.dumps(payload(event, reader_id), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event_name(event)}\ndata: {data}\n\n"


def revoked_frame(message: str) -> str:
    data = json.dumps({"code": CODE, "message": message}, separators=(",", ":"))
    return f"event: error\ndata: {data}\n\n"


async def stream(
    db: Database,
    fanout: Fanout,
    settings: RealtimeSettings,
    principal: Principal,
    reach: Reach,
    channels: frozenset[str] | None,
    last_event_id: str | None,
    disconnected: Callable[[], Awaitable[bool]],
    watch: CredentialWatch,
    shared: SharedChannels,
) -> AsyncIterator[str]:
    # Subscribed before history is read, so nothing falls between the two.
    sub = fanout.subscribe(principal.owner_id, channels, settings.sse_queue_size, reach.shared)
    tracked = shared.track(principal, reach.shared, lambda now: fanout.reshare(sub, now))
    revoked: list[str] = []

    def revoke(message: str) -> None:
        revoked.append(message)
        sub.interrupt()

    watched = watch.watch(principal, revoke)
    STREAMS.inc()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        sent: set[str] = set()
        if last_event_id is not None:
            replay = await events_since(
                db,
                fanout.recent,
                reach,
                last_event_id,
                channels,
                timedelta(seconds=settings.resume_window_seconds),
                settings.resume_limit,
            )
            for event in replay.events:
                if revoked:
                    break
                sent.add(event.id)
                if text := frame(event, principal.reader_id):
                    yield text
            REPLAYED.labels("sse").inc(len(replay.events))
            if not replay.complete and not revoked:
                # More was missed than one replay sends: end here; the client reconnects with the
                # last id it got and reads on.
                return
        while True:
            if revoked:
                yield revoked_frame(revoked[0])
                return
            if sub.overflowed.is_set() and sub.queue.empty():
                # The client read too slowly and events were dropped: end the stream; it resumes
                # from the last id it got and reads the rest from history.
                DROPPED_STREAMS.inc()
                return
            try:
                # Not wait_for: on Python 3.11 it can drop a cancellation (and an item) that
                # meets the get's completion; a stream would then run on after its client left.
                async with asyncio.timeout(settings.sse_heartbeat_seconds):
                    item = await sub.queue.get()
            except TimeoutError:
                if await disconnected():
                    return
                yield ": heartbeat\n\n"
                continue
            if item is not None and item.id not in sent and (text := frame(item, principal.reader_id)):
                yield text
    finally:
        watched.release()
        tracked.release()
        fanout.unsubscribe(sub)
        STREAMS.dec()
