"""The Kafka side: a consumer group over the events that concern humans (see
:mod:`sayso_service.consumers` for how it joins, commits and stops).

The handler only turns a batch into notification documents (planning a new review, cancelling
and updating for a closed one) and returns; offsets are committed after it returns, so a crash
before the writes redelivers the batch, and the unique key on every notification makes a
redelivered event add nothing. A MongoDB outage is waited out inside the handler, holding the
partition.
"""

from __future__ import annotations

from sayso_service.consumers import Group, GroupConsumer

from sayso_common import loops
from sayso_common.events import Event
from sayso_common.topics import MESSAGE_CREATED, OPERATOR_TOPICS, REVIEW_EXPIRED, REVIEW_RESPONDED
from sayso_notifier import metrics
from sayso_notifier.settings import NotifierSettings
from sayso_notifier.worker import Worker

# Operator events become one e-mail to the owner each (sayso_common.incidents).
TOPICS = (MESSAGE_CREATED, REVIEW_RESPONDED, REVIEW_EXPIRED, *OPERATOR_TOPICS)


def group(settings: NotifierSettings) -> Group:
    return Group.of("notifier", settings, TOPICS)


def consumer(settings: NotifierSettings, worker: Worker) -> GroupConsumer:
    async def handle(events: list[Event]) -> None:
        await loops.until_done("notifications", lambda: worker.accept(events))

    return GroupConsumer.build(
        settings, group(settings), worker.instance, handle, metrics.EVENTS_CONSUMED, metrics.CONSUMER_LAG
    )
