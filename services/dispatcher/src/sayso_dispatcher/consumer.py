"""The Kafka side: a consumer group over the topics that become webhooks (see
:mod:`sayso_service.consumers` for how it joins, commits and stops).

The agents' own URLs take review and message events; the other topics are read for explicit
endpoints only, and their records are dropped unparsed while no enabled endpoint asks for their
type (:meth:`EndpointDirectory.wants <sayso_dispatcher.endpoints.EndpointDirectory.wants>`).

The handler only turns a batch of events into delivery documents (one bulk insert, deduplicated
on event x URL) and returns; the offsets are committed after it returns, so a crash before the
insert redelivers the batch and a crash after it creates nothing twice. A MongoDB outage is
waited out inside the handler, holding the partition, until the write lands.
"""

from __future__ import annotations

from collections.abc import Callable

from sayso_service.consumers import Group, GroupConsumer

from sayso_common import loops
from sayso_common.events import Event, wire_name
from sayso_common.topics import (
    AGENT_STATUS,
    APPROVAL_REMEMBERED,
    APPROVAL_REVOKED,
    DELIVERY_STATUS,
    MESSAGE_CREATED,
    MESSAGE_UPDATED,
    OPERATOR_TOPICS,
    REVIEW_EXPIRED,
    REVIEW_RESPONDED,
    REVIEW_VOTED,
)
from sayso_dispatcher import metrics
from sayso_dispatcher.endpoints import EndpointDirectory
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import Worker

# What agents' own URLs (and endpoints) take: always parsed.
AGENT_TOPICS = (REVIEW_RESPONDED, REVIEW_EXPIRED, MESSAGE_CREATED)
# What only explicit endpoints take: parsed only while an enabled endpoint asks for the type.
ENDPOINT_TOPICS = (
    REVIEW_VOTED,
    MESSAGE_UPDATED,
    DELIVERY_STATUS,
    AGENT_STATUS,
    APPROVAL_REMEMBERED,
    APPROVAL_REVOKED,
    # Operator events go to the ops endpoints that subscribed to them (sayso_common.incidents).
    *OPERATOR_TOPICS,
)
TOPICS = (*AGENT_TOPICS, *ENDPOINT_TOPICS)


def keeper(endpoints: EndpointDirectory) -> Callable[[str], bool]:
    """Which records of a batch to parse, by event type."""

    def keep(event_type: str) -> bool:
        return event_type in AGENT_TOPICS or endpoints.wants(wire_name(event_type))

    return keep


def group(settings: DispatcherSettings) -> Group:
    return Group.of("dispatcher", settings, TOPICS)


def consumer(settings: DispatcherSettings, worker: Worker) -> GroupConsumer:
    async def handle(events: list[Event]) -> None:
        await loops.until_done("deliveries", lambda: worker.accept(events))

    return GroupConsumer.build(
        settings,
        group(settings),
        worker.instance,
        handle,
        metrics.EVENTS_CONSUMED,
        metrics.CONSUMER_LAG,
        keep=keeper(worker.endpoints),
    )
