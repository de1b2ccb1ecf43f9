"""The Kafka side: a FastStream consumer group over the events that concern humans.

The handler only turns a batch into notification documents (planning a new review, cancelling
and updating for a closed one) and returns; offsets are committed after it returns
(``AckPolicy.ACK``), so a crash before the writes redelivers the batch, and the unique key on
every notification makes a redelivered event add nothing. FastStream also commits when the
handler raises, so a MongoDB outage is waited out inside the handler, holding the partition.
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
from signoff_notifier import metrics
from signoff_notifier.settings import NotifierSettings
from signoff_notifier.worker import Worker

log = logging.getLogger(__name__)

TOPICS = (MESSAGE_CREATED, REVIEW_RESPONDED, REVIEW_EXPIRED)


async def raw_values(msg: StreamMessage[Any]) -> list[bytes]:
    """The batch as the records' bytes, validated once by ``parse_event``."""
    return [record.value for record in msg.raw_message]


def parse_batch(raw: list[Any]) -> list[Event]:
    events: list[Event] = []
    for value in raw:
        try:
            events.append(parse_event(value))
        except (ValidationError, TypeError):
            # A record no version of this service can read (or a tombstone): skip it.
            log.error("unparseable event skipped")
    return events


async def store_until_done(worker: Worker, events: list[Event]) -> None:
    delay = 0.2
    while True:
        try:
            await worker.accept(events)
            return
        except PyMongoError:
            log.warning("cannot store notifications; retrying before committing", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_broker(settings: NotifierSettings, worker: Worker) -> KafkaBroker:
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"{settings.instance or 'notifier'}-{worker.instance}",
        logger=log,
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
    )

    @broker.subscriber(
        *[topic_for(t, settings.topic_prefix) for t in TOPICS],
        batch=True,
        max_records=settings.notifier_max_poll_records,
        batch_timeout_ms=50,
        decoder=raw_values,
        # Tansu answers a fetch only when this wait runs out: keep it short (see ServiceSettings).
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        group_id=settings.notifier_group_id,
        ack_policy=AckPolicy.ACK,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.notifier_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.notifier_session_timeout_ms // 4),
    )
    async def on_events(batch: list[Any]) -> None:
        events = parse_batch(batch)
        for event in events:
            metrics.EVENTS_CONSUMED.labels(event.type).inc()
        await store_until_done(worker, events)

    return broker


async def consumer_lag(broker: KafkaBroker) -> dict[str, int]:
    """Records between each assigned partition's position and its high watermark, by topic."""
    lag: dict[str, int] = {}
    for sub in broker.subscribers:
        consumer = getattr(sub, "consumer", None)
        if not isinstance(consumer, AIOKafkaConsumer):
            continue
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
