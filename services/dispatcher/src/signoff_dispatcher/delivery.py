"""Delivery documents: one per event x URL, the unit of work, retry and audit.

Shape (``deliveries`` collection)::

    _id, event_id, event_type ("review.responded" … or "webhook.test"), channel_id, owner_id,
    message_id, url, host, method, source, headers_enc, body (the exact JSON text sent),
    schedule (retry delays, fixed at creation), state pending|delivered|failed,
    status sent|webhook_delivered|webhook_failed, attempt_count, round_attempts (since the last
    manual re-queue), attempts [capped list], next_attempt_at, claim, last_status_code,
    last_error, created_at, updated_at, outbox [delivery.status events]

A pending delivery is due when ``next_attempt_at`` has passed. Claiming it pushes
``next_attempt_at`` to the end of the lease and stamps a ``claim`` token, so one index answers
both "retries that are due" and "leases a crashed replica left behind", and only the claim
holder can record the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from signoff_common.events import delivery_status_event, event_to_document
from signoff_common.ids import new_id
from signoff_common.mongo import Doc
from signoff_common.views import DeliveryStatus
from signoff_dispatcher.retry import Verdict
from signoff_dispatcher.targets import Target

BODY_EXCERPT = 1024
REVIEW_EVENTS = ("review.responded", "review.expired")


def host_key(url: str) -> str:
    """What per-host limits and circuits are keyed on: host and port, lower case."""
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

    def document(self) -> Doc:
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
    target: Target,
    body: str,
    schedule: list[int],
    now: datetime,
    due_at: datetime,
    claim: str | None,
) -> Doc:
    return {
        "_id": new_id("dlv"),
        "event_id": event_id,
        "event_type": event_type,
        "channel_id": channel_id,
        "owner_id": owner_id,
        "message_id": message_id,
        "url": target.url,
        "host": host_key(target.url),
        "method": target.method,
        "source": target.source,
        "headers_enc": target.headers_enc,
        "body": body,
        "schedule": list(schedule),
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


@dataclass(frozen=True)
class Outcome:
    """What recording one attempt does to the delivery."""

    update: Doc
    state: str
    status: DeliveryStatus
    next_attempt_at: datetime | None


def record_attempt(
    doc: Doc,
    attempt: Attempt,
    verdict: Verdict,
    retry_delay: float | None,
    now: datetime,
    attempts_kept: int,
) -> Outcome:
    """The update for one finished attempt: delivered, failed for good, or due again later."""
    count = doc.get("attempt_count", 0) + 1
    common: Doc = {
        "attempt_count": count,
        "round_attempts": doc.get("round_attempts", 0) + 1,
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
        "last_attempt_at": attempt.at,
        "updated_at": now,
        "claim": None,
    }
    push_attempt = {"$each": [attempt.document()], "$slice": -attempts_kept}
    status: DeliveryStatus
    next_at: datetime | None
    if verdict is Verdict.DELIVERED:
        state, status, next_at = "delivered", "webhook_delivered", None
        fields = {**common, "state": state, "status": status, "delivered_at": now}
    elif verdict is Verdict.RETRY and retry_delay is not None:
        state, status, next_at = "pending", "sent", now + timedelta(seconds=retry_delay)
        fields = {**common, "state": state, "next_attempt_at": next_at}
    else:
        state, status, next_at = "failed", "webhook_failed", None
        fields = {**common, "state": state, "status": status, "failed_at": now}
    update: Doc = {"$set": fields, "$push": {"attempts": push_attempt}}
    if status != doc.get("status") or verdict is Verdict.RETRY:
        # Every status change, and every scheduled retry, is announced on delivery.status.
        event = delivery_status_event(doc, status, now, fields)
        update["$push"]["outbox"] = event_to_document(event)
    if next_at is None:
        update["$unset"] = {"next_attempt_at": ""}
    return Outcome(update, state, status, next_at)
