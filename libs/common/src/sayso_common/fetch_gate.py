"""Kafka consumers that stop fetching while there is nothing to read (issue #36).

The local broker (Tansu) answers a fetch only when the fetch's whole wait has run out, data or
not, so consumers keep that wait short (``kafka_fetch_max_wait_ms``, 10 ms) for latency; idle,
each consumer then fetched about 100 times a second and the stack burned half a core doing it.

A gate pauses a consumer's partitions once everything published before the last wake-up has been
handed to the application, and resumes them when the outbox relay records a newly published event
in the ``events`` collection (it does that only after the broker acknowledged the record, so a
fetch sent on that signal finds it), and at the latest every ``recheck`` seconds, in case a signal
was missed. Pausing never loses a record: an unpaused partition is fetched from the consumer's
position, which only moves when records reach the application.

"Everything was read" is judged two ways, and both must hold. The stored event names where the
broker put the record (topic, partition, offset): a consumer holding that partition reads past
it before it may pause. That is exact, and it is what a busy process needs: a fetch the broker
answered (empty) before the publish but that the process handled after the wake-up looks fresh
by its time, and paused the consumer with the record unread until the recheck (seen as a live
event arriving ~10 s late under load). For what no stored event names (a wake-up without a
position, records another writer published), the last fetch must have been answered after the
wake-up with nothing left below its high watermark. A position not reached within ``recheck``
seconds (the broker restarted empty and offsets began again) is dropped, so the gate can pause.

The gate also resumes a little earlier, when a write queues an event in an outbox (the same
writes that wake the relay): the relay then publishes it within milliseconds, and a consumer
already fetching at the short wait reads it a fetch after the broker took it, instead of after
the relay's store of it, the change stream's notice and a first fetch (issue #36: about a third
of the way from an answer to its webhook). Until the relay stores a published event, or
``EXPECT_SECONDS`` pass, such a wake-up does not let the gate pause; nothing depends on it: the
store still wakes the gate with the event's position, as before.

A broker that answers fetches as soon as data arrives (Apache Kafka) needs none of this: give it a
long wait (500 ms) and turn the gate off (``SAYSO_KAFKA_PAUSE_WHEN_IDLE=false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge

from sayso_common import loops
from sayso_common.aiokafka_internals import set_fetch_wait
from sayso_common.kafka import position
from sayso_common.mongo import CARRIES_OUTBOX, EVENTS, OUTBOX_COLLECTIONS, Database
from sayso_common.settings import ServiceSettings

PAUSED = Gauge(
    "sayso_kafka_fetch_paused",
    "1 while this process's Kafka consumers have read everything and fetch nothing (fetch gate)",
)

# How often a resumed gate checks whether its consumers have read everything.
CHECK_SECONDS = 0.005
# A fetch answered this long after the wake-up was sent after it (loopback round trips are well
# under this; the event was published several milliseconds before the wake-up, see above).
MARGIN_MS = 2
# The wait of the fetches right after a wake-up: Tansu answers each only when its wait is over,
# so the record that woke the gate reaches the application a wait after it (10 ms at the
# configured wait, 1 ms at this one). Once the consumers stay busy this long, fetches go back to
# the configured wait: fewer, fuller fetches under load.
FAST_WAIT_MS = 1
BUSY_MS = 100
# How long a write that queued an event keeps the gate from pausing, unless the relay's store of
# a published event comes first (a relay publishes within milliseconds; one that is down or
# without its lease leaves the event for the next holder, whose store wakes the gate again).
EXPECT_SECONDS = 1.0


# Where records were published: (topic, partition, offset) each.
Published = Iterable[tuple[str, int, int]]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def caught_up(consumer: AIOKafkaConsumer, answered_after_ms: int) -> bool:
    """Whether every partition ``consumer`` holds was fetched by a fetch answered after
    ``answered_after_ms`` and every record that fetch saw has been handed to the application
    (position at the high watermark)."""
    try:
        for tp in consumer.assignment():
            polled = consumer.last_poll_timestamp(tp)
            high = consumer.highwater(tp)
            if polled is None or high is None or polled < answered_after_ms:
                return False
            if await position(consumer, tp) < high:
                return False
    except Exception:  # stopping, rebalancing, resetting: not known to be caught up
        return False
    return True


async def reached(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, tuple[int, float]]) -> bool:
    """Whether ``consumer`` handed the application every record below the announced offset of each
    partition it holds; the targets it reached are forgotten (positions only move forward)."""
    try:
        for tp in consumer.assignment():
            target = targets.get(tp)
            if target is None:
                continue
            if await position(consumer, tp) < target[0]:
                return False
            if targets.get(tp) == target:  # not raised meanwhile
                del targets[tp]
    except Exception:  # stopping, rebalancing, resetting: not known to be caught up
        return False
    return True


def _set_paused(consumer: AIOKafkaConsumer, paused: bool) -> None:
    # A consumer stopping or rebalancing meanwhile: the next pass sees its new assignment.
    with contextlib.suppress(Exception):
        partitions = list(consumer.assignment())
        if partitions:
            (consumer.pause if paused else consumer.resume)(*partitions)


class FetchGate:
    """Pauses the partitions of ``consumers`` (read at each pass: a consumer restarted or a group
    rebalanced is picked up) while they have read everything; :meth:`wake` resumes them."""

    def __init__(
        self,
        consumers: Callable[[], Iterable[AIOKafkaConsumer]],
        *,
        fetch_wait_ms: int,
        recheck_seconds: float,
    ) -> None:
        self._consumers = consumers
        self._fetch_wait_ms = fetch_wait_ms
        self._recheck = recheck_seconds
        self._woken = asyncio.Event()
        # Partition -> (the offset to read up to, when to give up on it, monotonic).
        self._targets: dict[TopicPartition, tuple[int, float]] = {}
        self._wait_ms = fetch_wait_ms  # of the fetches being sent now
        # Until then a fetch with a longer wait than the current one may still be answered.
        self._settled_ms = 0
        # Until then (monotonic) an event queued in an outbox is expected to be published.
        self._expect_until = 0.0
        self.paused = False

    def wake(self, published: Published = ()) -> None:
        """Records were published: resume fetching. ``published`` names where (topic, partition,
        offset), when known; a consumer holding such a partition reads past it before pausing."""
        give_up = time.monotonic() + self._recheck
        # What was expected was published; its position (if known) is what to read up to now.
        self._expect_until = 0.0
        for topic, partition, offset in published:
            tp = TopicPartition(topic, partition)
            held = self._targets.get(tp)
            if held is None or held[0] <= offset:
                self._targets[tp] = (offset + 1, give_up)
        self._woken.set()

    def expect(self) -> None:
        """A write queued an event in an outbox: resume fetching now, and do not pause until the
        relay stores a published event (:meth:`wake`) or ``EXPECT_SECONDS`` pass."""
        self._expect_until = time.monotonic() + EXPECT_SECONDS
        self._woken.set()

    async def run(self) -> NoReturn:
        while True:
            self._woken.clear()
            resumed_ms = woken_ms = _now_ms()
            self._set(paused=False)
            while True:
                # A fetch answered this late was sent after the wake-up: a broker holds one for
                # at most its wait.
                answered_after = max(woken_ms + self._wait_ms, self._settled_ms) + MARGIN_MS
                if self._woken.is_set():
                    self._woken.clear()  # published meanwhile: read that too before pausing
                    woken_ms = _now_ms()
                elif time.monotonic() >= self._expect_until and await self._caught_up(answered_after):
                    break
                busy = _now_ms() - resumed_ms > BUSY_MS
                if busy and self._wait_ms < self._fetch_wait_ms:
                    self._set_wait(self._fetch_wait_ms)
                # Under load the check only decides when to pause once it is over: less often.
                await asyncio.sleep(CHECK_SECONDS * (4 if busy else 1))
            if self._woken.is_set():
                continue
            # No await between this check and the pause: a wake-up cannot fall in between.
            self._set(paused=True)
            await loops.wait_set(self._woken, self._recheck)

    async def _caught_up(self, answered_after_ms: int) -> bool:
        now = time.monotonic()
        for tp in [tp for tp, (_, give_up) in self._targets.items() if give_up < now]:
            del self._targets[tp]
        for consumer in list(self._consumers()):
            if not await reached(consumer, self._targets):
                return False
            if not await caught_up(consumer, answered_after_ms):
                return False
        return True

    def open(self) -> None:
        """Resume every consumer for good, at the configured wait (the gate is stopping)."""
        self._set_wait(self._fetch_wait_ms)
        self._set(paused=False)

    def _set_wait(self, wait_ms: int) -> None:
        if wait_ms < self._wait_ms:
            self._settled_ms = max(self._settled_ms, _now_ms() + self._wait_ms)
        self._wait_ms = wait_ms
        for consumer in self._consumers():
            set_fetch_wait(consumer, wait_ms)

    def _set(self, *, paused: bool) -> None:
        if paused:
            # The next wake-up's first fetches are quick ones.
            self._set_wait(min(FAST_WAIT_MS, self._fetch_wait_ms))
        for consumer in self._consumers():
            # A consumer created since (a restart, a reconnection) starts at the configured wait.
            set_fetch_wait(consumer, self._wait_ms)
            _set_paused(consumer, paused)
        self.paused = paused
        PAUSED.set(1 if paused else 0)


async def wake_on_published(
    db: Database, wake: Callable[[Published], None], expect: Callable[[], None] | None = None
) -> NoReturn:
    """Call ``wake`` whenever the outbox relay stores a published event (with where the broker
    put it), and whenever the change stream opens (what was published while none was open is
    unknown); call ``expect`` whenever a write queues an event in an outbox (one change stream
    over the database, in the order MongoDB applied the writes)."""
    stored = {"ns.coll": str(EVENTS), "operationType": "insert"}
    queued = {"ns.coll": {"$in": list(OUTBOX_COLLECTIONS)}, "$or": CARRIES_OUTBOX}
    pipeline: list[dict[str, Any]] = [
        {"$match": {"$or": [stored, queued] if expect is not None else [stored]}},
        {"$project": {"_id": 1, "ns.coll": 1, "fullDocument.published": 1}},
    ]

    def on_change(change: Any) -> None:
        if change["ns"]["coll"] == EVENTS:
            wake(_published(change))
        elif expect is not None:
            expect()

    await loops.watch(
        db, pipeline, on_change, what="published-events change stream", on_open=lambda: wake(())
    )


def _published(change: Any) -> list[tuple[str, int, int]]:
    at = (change.get("fullDocument") or {}).get("published")
    if not isinstance(at, dict):  # an older document: a plain wake-up
        return []
    try:
        return [(str(at["topic"]), int(at["partition"]), int(at["offset"]))]
    except (KeyError, TypeError, ValueError):
        return []


async def run_gate(
    db: Database,
    consumers: Callable[[], Iterable[AIOKafkaConsumer]],
    settings: ServiceSettings,
) -> None:
    """The gate over ``consumers`` and its wake-ups, for as long as it runs; nothing when the
    setting turns it off (a broker that answers fetches when data arrives)."""
    if not settings.kafka_pause_when_idle:
        return
    gate = FetchGate(
        consumers,
        fetch_wait_ms=settings.kafka_fetch_max_wait_ms,
        recheck_seconds=settings.kafka_idle_recheck_seconds,
    )
    try:
        await asyncio.gather(
            loops.forever("fetch gate", gate.run), wake_on_published(db, gate.wake, gate.expect)
        )
    finally:
        # Fail open: consumers left paused by a gate that stopped would read nothing ever again.
        gate.open()
