"""Delivery documents (:class:`DeliveryDoc`): one per event x target (the agent's URL, or an
endpoint), the unit of work, retry and audit. The one home of every change to them, used by the
dispatcher (creating, recording attempts) and the API (test sends, manual re-queues), and of the
delivery status a review's message mirrors.

A pending delivery is due when ``next_attempt_at`` has passed. Claiming it pushes
``next_attempt_at`` to the end of the lease and stamps a ``claim`` token, so one index answers
both "retries that are due" and "leases a crashed replica left behind", and only the claim
holder can record the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pymongo import UpdateOne

from sayso_common.documents import AttemptDoc, DeliveryDoc, DeliverySource, DeliveryState
from sayso_common.events import delivery_status_event, event_to_document
from sayso_common.ids import new_id
from sayso_common.kafka_destinations import is_kafka_url, lane_host
from sayso_common.views import DeliveryStatus

BODY_EXCERPT = 1024
# The events whose delivery status the message mirrors (``delivery_status`` on the message).
REVIEW_EVENTS = ("review.responded", "review.expired")

# What one attempt means for its delivery (the dispatcher's retry rules decide which).
Result = Literal["delivered", "retry", "failed"]


def host_key(url: str) -> str:
    """What per-host limits and circuits are keyed on: host and port, lower case (a Kafka
    destination's: its cluster)."""
    if is_kafka_url(url):
        return lane_host(url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Attempt:
    at: datetime
    duration_ms: float
    status_code: int | None
    error_kind: str | None
    error: str | None
    body: str | None
    retry_after: float | None = None
    by: str = ""

    def document(self) -> AttemptDoc:
        return {
            "at": self.at,
            "duration_ms": round(self.duration_ms, 2),
            "status_code": self.status_code,
            "error_kind": self.error_kind,
            "error": self.error,
            "body": self.body,
            "by": self.by,
        }


def new_delivery(
    *,
    event_id: str,
    event_type: str,
    channel_id: str,
    owner_id: str,
    message_id: str | None,
    url: str,
    source: DeliverySource,
    body: str,
    schedule: list[int] | None,
    now: datetime,
    due_at: datetime,
    claim: str | None,
    method: str = "POST",
    headers_enc: str | None = None,
    event_at: datetime | None = None,
    traceparent: str | None = None,
    endpoint_id: str | None = None,
) -> DeliveryDoc:
    """A delivery created pending: due at ``due_at``, held by ``claim`` if one is given."""
    doc: DeliveryDoc = {
        "_id": new_id("dlv"),
        "event_id": event_id,
        "event_type": event_type,
        "channel_id": channel_id,
        "owner_id": owner_id,
        "message_id": message_id,
        "url": url,
        "host": host_key(url),
        "method": method,
        "source": source,
        "headers_enc": headers_enc,
        "body": body,
        "schedule": None if schedule is None else list(schedule),
        "state": "pending",
        "status": "sent",
        "attempt_count": 0,
        "round_attempts": 0,
        "attempts": [],
        "next_attempt_at": due_at,
        "claim": claim,
        "last_status_code": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    if endpoint_id is not None:
        doc["endpoint_id"] = endpoint_id
    if event_at is not None:
        doc["event_at"] = event_at
    if traceparent:
        doc["traceparent"] = traceparent
    return doc


@dataclass(frozen=True)
class Outcome:
    """What recording one attempt does to the delivery."""

    update: dict[str, Any]
    state: DeliveryState
    status: DeliveryStatus
    next_attempt_at: datetime | None


def record_attempt(
    doc: DeliveryDoc,
    attempt: Attempt,
    result: Result,
    retry_delay: float | None,
    now: datetime,
    attempts_kept: int,
) -> Outcome:
    """The update for one finished attempt: delivered, failed for good, or due again later (a
    retry without a delay left in the schedule fails)."""
    common: dict[str, Any] = {
        "attempt_count": doc.get("attempt_count", 0) + 1,
        "round_attempts": doc.get("round_attempts", 0) + 1,
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
        "last_attempt_at": attempt.at,
        "updated_at": now,
        "claim": None,
    }
    push_attempt = {"$each": [attempt.document()], "$slice": -attempts_kept}
    state: DeliveryState
    status: DeliveryStatus
    next_at: datetime | None
    if result == "delivered":
        state, status, next_at = "delivered", "webhook_delivered", None
        fields = {**common, "state": state, "status": status, "delivered_at": now}
    elif result == "retry" and retry_delay is not None:
        state, status, next_at = "pending", "sent", now + timedelta(seconds=retry_delay)
        fields = {**common, "state": state, "next_attempt_at": next_at}
    else:
        state, status, next_at = "failed", "webhook_failed", None
        fields = {**common, "state": state, "status": status, "failed_at": now}
    update: dict[str, Any] = {"$set": fields, "$push": {"attempts": push_attempt}}
    if status != doc.get("status") or state == "pending":
        # Every status change, and every scheduled retry, is announced on delivery.status.
        event = delivery_status_event(doc, status, now, fields)
        update["$push"]["outbox"] = event_to_document(event)
    if next_at is None:
        update["$unset"] = {"next_attempt_at": ""}
    return Outcome(update, state, status, next_at)


def requeued_fields(doc: DeliveryDoc, now: datetime) -> dict[str, Any]:
    """What :func:`requeue` sets on ``doc``."""
    fields: dict[str, Any] = {"requeued_at": now, "updated_at": now}
    if not (doc["state"] == "pending" and doc.get("claim")):
        fields |= {
            "state": "pending",
            "status": "sent",
            "next_attempt_at": now,
            "round_attempts": 0,
            "claim": None,
        }
    return fields


def requeue(doc: DeliveryDoc, now: datetime) -> UpdateOne:
    """Make a delivery due now with a fresh retry round, same body and webhook-id (a manual
    retry or a recovery). A delivery in flight (claimed) keeps its claim: its attempt is happening
    right now. ``requeued_at`` is what wakes the dispatchers' change streams."""
    event = delivery_status_event(doc, "sent", now, {"next_attempt_at": now})
    return UpdateOne(
        {"_id": doc["_id"], "claim": doc.get("claim")},
        {"$set": requeued_fields(doc, now), "$push": {"outbox": event_to_document(event)}},
    )


def message_status(
    message_ids: list[str], status: DeliveryStatus, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) mirroring a review's delivery status onto its message(s): the one way
    ``delivery_status`` changes after a review is answered or expired, for the dispatcher
    (outcomes) and the API (re-queues). ``agent_received`` (the agent acknowledged) is the last
    word, and an unchanged status is not rewritten."""
    return (
        {"_id": {"$in": message_ids}, "delivery_status": {"$nin": ["agent_received", status]}},
        {"$set": {"delivery_status": status, "updated_at": now}},
    )
