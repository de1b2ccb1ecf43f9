"""The Kafka side: a consumer group over the topics that become webhooks (see
:mod:`sayso_service.consumers` for how it joins, commits and stops).

The handler only turns a batch of events into delivery documents (one bulk insert, deduplicated
on event x URL) and returns; the offsets are committed after it returns, so a crash before the
insert redelivers the batch and a crash after it creates nothing twice. A MongoDB outage is
waited out inside the handler, holding the partition, until the write lands.
"""

from __future__ import annotations

from sayso_service.consumers import Group, GroupConsumer

from sayso_common import loops
from sayso_common.events import Event
from sayso_common.topics import MESSAGE_CREATED, REVIEW_EXPIRED, REVIEW_RESPONDED
from sayso_dispatcher import metrics
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import Worker

TOPICS = (REVIEW_RESPONDED, REVIEW_EXPIRED, MESSAGE_CREATED)


def group(settings: DispatcherSettings) -> Group:
    return Group(
        name="dispatcher",
        group_id=settings.dispatcher_group_id,
        topics=TOPICS,
        max_records=settings.dispatcher_max_poll_records,
        session_timeout_ms=settings.dispatcher_session_timeout_ms,
        start_timeout_seconds=settings.dispatcher_start_timeout_seconds,
    )


def consumer(settings: DispatcherSettings, worker: Worker) -> GroupConsumer:
    async def handle(events: list[Event]) -> None:
        await loops.until_done("deliveries", lambda: worker.accept(events))

    return GroupConsumer.build(
        settings, group(settings), worker.instance, handle, metrics.EVENTS_CONSUMED, metrics.CONSUMER_LAG
    )
