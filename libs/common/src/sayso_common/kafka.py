"""Kafka producer lifecycle and topic set-up, shared by every service that publishes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from sayso_common.aiokafka_internals import refresh_metadata
from sayso_common.settings import ServiceSettings
from sayso_common.topics import all_topics

log = logging.getLogger(__name__)


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """acks=all so a record counts as published only once the broker stored it."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=settings.instance or "sayso",
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        # No linger: the relay sends a whole drained batch before awaiting, so records still share
        # requests, and a single answer is not held back 2 ms on its way to the waiting agent.
        linger_ms=0,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
        # Kafka's default (the broker's message.max.bytes is about the same); events are kept
        # below it at write time (sayso_common.events.MAX_EVENT_BYTES).
        max_request_size=1024 * 1024,
    )


async def ensure_topics(settings: ServiceSettings) -> None:
    """Create the event topics if missing. Safe to call from every replica at once."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{settings.instance}-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in all_topics(settings.topic_prefix) if t not in existing]
        if not wanted:
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(t, settings.topic_partitions, 1) for t in wanted], timeout_ms=10_000
            )
        log.info("created topics", extra={"topics": wanted})
    finally:
        await admin.close()


async def check_producer(producer: AIOKafkaProducer, timeout: float = 2.0) -> None:
    """Readiness: the producer can reach the cluster and read metadata."""
    await asyncio.wait_for(refresh_metadata(producer), timeout)


async def position(consumer: AIOKafkaConsumer, tp: TopicPartition, seconds: float = 1.0) -> int:
    """``consumer``'s position on ``tp``, waiting at most ``seconds`` for it.

    ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 a ``wait_for`` whose inner
    coroutine finishes as the caller is cancelled drops the cancellation, and ``position``
    usually finishes at once. The fetch gate asks every 5 ms while awake, so its task could miss
    the cancel that stops it and run on (a test's teardown waited on it for good)."""
    async with asyncio.timeout(seconds):
        offset: int = await consumer.position(tp)
    return offset


async def consumer_lag(consumers: Iterable[AIOKafkaConsumer]) -> dict[str, int]:
    """Records between each assigned partition's position and its high watermark, by topic, over
    ``consumers`` (the dispatcher's and the notifier's consumer groups), as far as aiokafka knows
    them (every fetch refreshes the high watermark)."""
    lag: dict[str, int] = {}
    for consumer in consumers:
        # Every subscribed topic gets a value, 0 when a rebalance left this replica none of its
        # partitions: the gauge would otherwise keep the last lag it saw there for good.
        for topic in consumer.subscription():
            lag.setdefault(topic, 0)
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                at = await position(consumer, tp)
            except Exception:  # a rebalance took the partition away meanwhile
                log.debug("no position for %s", tp, exc_info=True)
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - at)
    return lag
