"""The Kafka side: a FastStream consumer group over the topics that become webhooks.

The handler only turns a batch of events into delivery documents (one bulk insert, deduplicated
on event x URL) and returns; the offsets are committed after it returns (``AckPolicy.ACK``), so a
crash before the insert redelivers the batch and a crash after it creates nothing twice.
FastStream's ACK policy also commits when the handler raises, so the handler never raises for
a MongoDB outage: it waits and retries, holding the partition, until the write lands.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from signoff_common import loops
from signoff_common.events import parse_batch
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
        await loops.until_done("deliveries", lambda: worker.accept(events))

    return broker
