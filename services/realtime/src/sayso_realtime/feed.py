"""The Kafka feed: every event of every topic, in every replica.

No consumer group: each replica assigns itself every partition and starts at the end, so a
waiter or socket on any replica hears about a response handled anywhere. Nothing is committed;
the truth is in MongoDB and a restarted replica needs only what happens from then on. If the
connection fails, the feed resumes from the offsets it had reached, so a broker hiccup loses no
event for the clients still connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from sayso_common import loops
from sayso_common.events import Event, parse_event
from sayso_common.kafka import ensure_topics
from sayso_common.settings import ServiceSettings
from sayso_common.topics import all_topics
from sayso_realtime.metrics import EVENTS_CONSUMED

log = logging.getLogger(__name__)


class FeedNotReadyError(RuntimeError):
    pass


# Events stored (by the outbox relay) after a given event id: see EventFeed's ``stored_after``.
StoredAfter = Callable[[str], Awaitable[list[Event]]]


class EventFeed:
    def __init__(
        self,
        settings: ServiceSettings,
        publish: Callable[[Event], Awaitable[None]],
        stored_after: StoredAfter | None = None,
    ) -> None:
        self._settings = settings
        self._publish = publish
        # Reads the events collection: what a broker that lost its data had dropped is there.
        self._stored_after = stored_after
        self._last_id: str | None = None  # the last event read, the anchor for that catch-up
        self._positions: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None  # while positioned
        # Set once the consumer holds every partition at a known offset: from then on, every
        # event published is seen. Start-up waits for it so a fresh replica misses nothing.
        self.ready = asyncio.Event()

    async def check(self) -> None:
        if not self.ready.is_set():
            raise FeedNotReadyError("Kafka feed not positioned")

    async def run(self) -> None:
        await loops.forever("Kafka feed", self._consume, on_error=self.ready.clear)

    async def _consume(self) -> None:
        await ensure_topics(self._settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=f"{self._settings.instance or 'realtime'}-feed",
            group_id=None,
            enable_auto_commit=False,
            # Where a remembered offset no longer exists (a broker that lost its data): go live.
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            await self._position(consumer)
            self._consumer = consumer
            self.ready.set()
            log.info("Kafka feed positioned", extra={"partitions": len(self._positions)})
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        self._positions[tp] = record.offset + 1
                        await self._handle(record.value)
                await self._rewind_if_data_lost(consumer)
        finally:
            self._consumer = None
            await consumer.stop()

    def consumers(self) -> list[AIOKafkaConsumer]:
        """The feed's consumer once positioned, for the fetch gate (sayso_common.fetch_gate)."""
        return [self._consumer] if self._consumer is not None else []

    async def _rewind_if_data_lost(self, consumer: AIOKafkaConsumer) -> None:
        """A partition that now ends before this feed's position is on a broker that lost its data
        (a memory-only broker restarted). The client reconnects to it by itself, and such a broker
        answers fetches past its end with nothing rather than an error, so the feed would sit there
        until the partition grew past its old position, skipping everything before. All the broker
        holds was written since it came back: read every partition again from its start (repeats
        are dropped by event id)."""
        lost = [
            tp
            for tp in consumer.assignment()
            if (end := consumer.highwater(tp)) is not None and self._positions.get(tp, 0) > end
        ]
        if not lost:
            return
        log.warning(
            "the broker lost its data; reading every partition from its start", extra={"lost": len(lost)}
        )
        partitions = list(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            self._positions[tp] = await consumer.position(tp)
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Events the lost broker had acknowledged but this feed had not read yet are gone from it;
        the relay stored each in MongoDB before pulling it from the outbox. Hand on every event
        stored since the last one read (the fan-out drops those already handed on)."""
        if self._stored_after is None or self._last_id is None:
            return
        try:
            missed = await self._stored_after(self._last_id)
        except Exception:
            # Clients still get these when they next resume by their last event id.
            log.warning("could not read the events the broker lost", exc_info=True)
            return
        for event in missed:
            await self._dispatch(event)

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # refreshes cluster metadata
        partitions: list[TopicPartition] = []
        for topic in all_topics(self._settings.topic_prefix):
            found = consumer.partitions_for_topic(topic)
            if not found:
                raise FeedNotReadyError(f"topic {topic} has no partitions yet")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        fresh = [tp for tp in partitions if tp not in self._positions]
        if fresh:
            await consumer.seek_to_end(*fresh)
        for tp in partitions:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
        # Resolve every offset now, not lazily at the first fetch.
        for tp in partitions:
            self._positions[tp] = await consumer.position(tp)

    async def _handle(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            event = parse_event(raw)
        except ValidationError:
            log.error("unparseable event skipped", extra={"size": len(raw)})
            return
        EVENTS_CONSUMED.labels(event.type).inc()
        self._last_id = event.id
        await self._dispatch(event)

    async def _dispatch(self, event: Event) -> None:
        try:
            await self._publish(event)
        except Exception:
            # One client's failure must not stop the feed for everyone else.
            log.warning("fan-out of an event failed", exc_info=True, extra={"event_id": event.id})
