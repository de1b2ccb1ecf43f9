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
)


def topic_for(event_type: str, prefix: str = "") -> str:
    return f"{prefix}{event_type}"


def all_topics(prefix: str = "") -> list[str]:
    return [topic_for(t, prefix) for t in ALL_EVENT_TYPES]
