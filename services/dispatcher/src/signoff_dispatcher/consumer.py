"""The Kafka side: a FastStream consumer group over the topics that become webhooks.

The handler only turns a batch of events into delivery documents (one bulk insert, deduplicated
on event x URL) and returns; the offsets are committed after it returns (``AckPolicy.ACK``), so a
crash before the insert redelivers the batch and a crash after it creates nothing twice.
FastStream's ACK policy also commits when the handler raises, so the handler never raises for
a MongoDB outage: it waits and retries, holding the partition, until the write lands.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from signoff_common.events import Event, parse_event
from signoff_common.topics import MESSAGE_CREATED, REVIEW_EXPIRED, REVIEW_RESPONDED, topic_for
from signoff_dispatcher import metrics
from signoff_dispatcher.settings import DispatcherSettings
from signoff_dispatcher.worker import Worker

log = logging.getLogger(__name__)

TOPICS = (REVIEW_RESPONDED, REVIEW_EXPIRED, MESSAGE_CREATED)


async def raw_values(msg: StreamMessage[Any]) -> list[bytes]:
    """The batch as the records' bytes. FastStream's own decoder builds a message object (with a
    uuid4) and runs ``json.loads`` per record, only for ``parse_event`` to validate the result
    again; pydantic reads the JSON bytes directly (5.6 µs an event here, against 10.6 µs for
    ``json.loads`` and validation, before FastStream's per-record objects)."""
    return [record.value for record in msg.raw_message]


def parse_batch(raw: list[Any]) -> list[Event]:
    events: list[Event] = []
    for value in raw:
        try:
            events.append(parse_event(value))
        except (ValidationError, TypeError):
            # A record no version of this service can read (or a tombstone, None): skipping it is
            # the only way forward.
            log.error("unparseable event skipped")
    return events


async def store_until_done(worker: Worker, events: list[Event]) -> None:
    delay = 0.2
    while True:
        try:
            await worker.accept(events)
            return
        except PyMongoError:
            log.warning("cannot store deliveries; retrying before committing", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_broker(settings: DispatcherSettings, worker: Worker) -> KafkaBroker:
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"{settings.instance or 'dispatcher'}-{worker.instance}",
        logger=log,
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
    )
    topics = [topic_for(t, settings.topic_prefix) for t in TOPICS]

    @broker.subscriber(
        *topics,
        batch=True,
        max_records=settings.dispatcher_max_poll_records,
        batch_timeout_ms=50,
        decoder=raw_values,
        # Latency over idle fetches: Tansu answers a fetch only when this wait runs out, not as
        # soon as a record arrives, so the default 500 ms would add ~250 ms to every webhook.
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        group_id=settings.dispatcher_group_id,
        ack_policy=AckPolicy.ACK,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.dispatcher_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.dispatcher_session_timeout_ms // 4),
    )
    async def on_events(batch: list[Any]) -> None:
        events = parse_batch(batch)
        for event in events:
            metrics.EVENTS_CONSUMED.labels(event.type).inc()
        await store_until_done(worker, events)

    return broker


async def consumer_lag(broker: KafkaBroker) -> dict[str, int]:
    """Records between each assigned partition's position and its high watermark, by topic,
    as far as aiokafka knows them (the high watermark is refreshed by every fetch)."""
    lag: dict[str, int] = {}
    for sub in broker.subscribers:
        consumer = getattr(sub, "consumer", None)
        if not isinstance(consumer, AIOKafkaConsumer):
            continue
        # Every subscribed topic gets a value, 0 when a rebalance left this replica none of its
        # partitions: the gauge would otherwise keep the last lag it saw there for good.
        for topic in consumer.subscription():
            lag.setdefault(topic, 0)
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:  # a rebalance took the partition away meanwhile
                log.debug("no position for %s", tp, exc_info=True)
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
    return lag
