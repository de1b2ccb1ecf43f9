"""Kafka topic names. Topic name = event type, optionally prefixed (one cluster, many stacks)."""

from __future__ import annotations

from typing import Final

MESSAGE_CREATED: Final = "message.created"
MESSAGE_UPDATED: Final = "message.updated"
REVIEW_RESPONDED: Final = "review.responded"
REVIEW_EXPIRED: Final = "review.expired"
REVIEW_VOTED: Final = "review.voted"
DELIVERY_STATUS: Final = "delivery.status"
AGENT_STATUS: Final = "agent.status"
APPROVAL_REMEMBERED: Final = "approval.remembered"
APPROVAL_REVOKED: Final = "approval.revoked"
# Operator events (sayso_common.incidents): written by the dispatcher, read by the dispatcher
# (ops endpoints), the notifier (the owner's e-mail) and realtime.
ENDPOINT_DISABLED: Final = "operator.endpoint_disabled"
RETRIES_EXHAUSTED: Final = "operator.retries_exhausted"
CIRCUIT_OPEN: Final = "operator.circuit_open"
OPERATOR_TOPICS: Final[tuple[str, ...]] = (ENDPOINT_DISABLED, RETRIES_EXHAUSTED, CIRCUIT_OPEN)

ALL_EVENT_TYPES: Final[tuple[str, ...]] = (
    MESSAGE_CREATED,
    MESSAGE_UPDATED,
    REVIEW_RESPONDED,
    REVIEW_EXPIRED,
    REVIEW_VOTED,
    DELIVERY_STATUS,
    AGENT_STATUS,
    APPROVAL_REMEMBERED,
    APPROVAL_REVOKED,
    *OPERATOR_TOPICS,
)


def topic_for(event_type: str, prefix: str = "") -> str:
    return f"{prefix}{event_type}"


def all_topics(prefix: str = "") -> list[str]:
    return [topic_for(t, prefix) for t in ALL_EVENT_TYPES]
