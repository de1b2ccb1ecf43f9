"""The Kafka side: a FastStream consumer group over the events that concern humans.

The handler only turns a batch into notification documents (planning a new review, cancelling
and updating for a closed one) and returns; offsets are committed after it returns
(``AckPolicy.ACK``), so a crash before the writes redelivers the batch, and the unique key on
every notification makes a redelivered event add nothing. FastStream also commits when the
handler raises, so a MongoDB outage is waited out inside the handler, holding the partition.
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
from signoff_notifier import metrics
from signoff_notifier.settings import NotifierSettings
from signoff_notifier.worker import Worker

log = logging.getLogger(__name__)

TOPICS = (MESSAGE_CREATED, REVIEW_RESPONDED, REVIEW_EXPIRED)


async def raw_values(msg: StreamMessage[Any]) -> list[bytes]:
    """The batch as the records' bytes, validated once by ``parse_event``."""
    return [record.value for record in msg.raw_message]


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
        await loops.until_done("notifications", lambda: worker.accept(events))

    return broker
