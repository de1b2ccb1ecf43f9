"""Every use of FastStream beyond its public API, in one place (issue #28 item 5). Each function
names what it relies on; ``tests/test_library_contracts.py`` fails if the pinned FastStream (an
exact pin in libs/service/pyproject.toml) stops behaving so.

- :func:`subscriber_consumers`: a started Kafka subscriber keeps its aiokafka consumer as the
  attribute ``consumer`` (None before it starts and after it stops).
- :func:`hold_polls`: the batch subscriber reads with the consumer's ``getmany(timeout_ms=…)``
  (``batch_timeout_ms``, 50 ms here) and, when a poll comes back empty, sleeps as long again.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker


def subscriber_consumers(broker: KafkaBroker) -> list[AIOKafkaConsumer]:
    """The aiokafka consumers of ``broker``'s subscribers as they are now (none before it
    started)."""
    found = (getattr(sub, "consumer", None) for sub in broker.subscribers)
    return [c for c in found if isinstance(c, AIOKafkaConsumer)]


def hold_polls(consumer: AIOKafkaConsumer, at_least_ms: int) -> None:
    """Make every ``getmany`` on ``consumer`` wait up to ``at_least_ms`` for records.

    FastStream's batch subscriber polls with ``batch_timeout_ms`` (50 ms) and, when the poll comes
    back empty, sleeps as long again before the next one: a record arriving during that sleep
    waited up to 50 ms more (half the time, idle; issue #36). A poll that waits longer answers as
    soon as records arrive all the same, and leaves the sleep to an idle second."""
    poll = consumer.getmany

    async def getmany(
        *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = await poll(
            *partitions, timeout_ms=max(timeout_ms, at_least_ms), max_records=max_records
        )
        return batches

    consumer.getmany = getmany
