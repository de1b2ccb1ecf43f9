"""Hands every consumed event, once, to everything in this process waiting for it: long-poll
waiters, SSE streams, Socket.IO rooms, and the recent-events memory used by resume."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from sayso_common import otel
from sayso_common.clock import utcnow
from sayso_common.events import Event
from sayso_realtime.history import RecentEvents
from sayso_realtime.metrics import DUPLICATES, FANOUT_LATENCY
from sayso_realtime.waiters import Waiters


class SeenIds:
    """The last ``capacity`` event ids: Kafka delivers at least once and the relay may publish an
    event twice after a crash, and clients must see each event once."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class Subscription:
    """One owner's events and those of the channels shared with that user (optionally some
    channels only), queued for one consumer: an SSE stream, or a socket while it replays what it
    missed. A consumer that falls ``maxsize`` events behind is marked ``overflowed`` and should
    close; its client resumes from its cursor."""

    def __init__(
        self,
        owner_id: str,
        channels: frozenset[str] | None,
        maxsize: int,
        shared: frozenset[str] = frozenset(),
    ) -> None:
        self.owner_id = owner_id
        self.channels = channels
        self.shared = shared
        # ``None`` is no event: a wake-up for a consumer waiting on the queue (see ``interrupt``).
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = asyncio.Event()

    def wants(self, event: Event) -> bool:
        if event.owner_id != self.owner_id and event.channel_id not in self.shared:
            return False
        return self.channels is None or event.channel_id in self.channels

    def offer(self, event: Event) -> None:
        if self.overflowed.is_set():
            return  # after a gap nothing more: the consumer must not skip past what was dropped
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()

    def interrupt(self) -> None:
        """Wake a consumer waiting on the queue so it looks at its own state (a full queue needs
        no wake-up: its consumer is not waiting)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    def drain(self) -> list[Event]:
        out = []
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event is not None:
                out.append(event)
        return out


Emit = Callable[[Event], Awaitable[None]]


class Fanout:
    def __init__(self, waiters: Waiters, recent: RecentEvents, seen_capacity: int = 50_000) -> None:
        self.waiters = waiters
        self.recent = recent
        self._seen = SeenIds(seen_capacity)
        self._subs: dict[str, set[Subscription]] = {}
        # channel id -> subscriptions of users that channel is shared with.
        self._shared: dict[str, set[Subscription]] = {}
        self._emit: Emit | None = None

    def attach_sockets(self, emit: Emit) -> None:
        self._emit = emit

    def subscribe(
        self,
        owner_id: str,
        channels: frozenset[str] | None,
        maxsize: int,
        shared: frozenset[str] = frozenset(),
    ) -> Subscription:
        sub = Subscription(owner_id, channels, maxsize, frozenset())
        self._subs.setdefault(owner_id, set()).add(sub)
        self.reshare(sub, shared)
        return sub

    def reshare(self, sub: Subscription, shared: frozenset[str]) -> None:
        """The channels shared with the subscriber changed: from now on it gets the events of
        ``shared`` (and no longer those of the channels taken from it)."""
        for channel in sub.shared - shared:
            self._forget(self._shared, channel, sub)
        for channel in shared - sub.shared:
            self._shared.setdefault(channel, set()).add(sub)
        sub.shared = shared

    def unsubscribe(self, sub: Subscription) -> None:
        self._forget(self._subs, sub.owner_id, sub)
        self.reshare(sub, frozenset())

    @staticmethod
    def _forget(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
        subs = index.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del index[key]

    async def publish(self, event: Event) -> None:
        if not self._seen.first_time(event.id):
            DUPLICATES.inc()
            return
        if otel.active():
            with otel.processing(event.type, event.id, event.traceparent):
                await self._fan_out(event)
        else:
            await self._fan_out(event)

    async def _fan_out(self, event: Event) -> None:
        self.recent.add(event)
        self.waiters.wake(event)
        # Disjoint: a channel is never shared with its own owner.
        own, shared = self._subs.get(event.owner_id, ()), self._shared.get(event.channel_id, ())
        for sub in itertools.chain(own, shared):
            if sub.wants(event):
                sub.offer(event)
        # Subscriptions are fed and the socket rooms resolved in one step, with no await between:
        # a socket moving from its replay subscription to its rooms gets each event exactly once.
        if self._emit is not None:
            await self._emit(event)
        FANOUT_LATENCY.observe(max(0.0, (utcnow() - event.occurred_at).total_seconds()))
