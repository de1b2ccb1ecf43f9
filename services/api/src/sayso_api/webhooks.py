"""Outbound webhook management: delivery history, manual retry, test sends, recovery after an
outage, signing-secret rotation.

The API never sends webhooks itself and never imports the dispatcher: it writes delivery
documents (or re-queues them, stamping ``requeued_at``), and the dispatcher - woken by a change
stream on that field - claims and sends them. Both build and change deliveries with the same
functions, ``sayso_common.deliveries``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import Field
from pymongo import ASCENDING, DESCENDING

from sayso_api.agents import get_agent
from sayso_api.messages import get_message
from sayso_api.schemas import Out
from sayso_common import signing_secrets
from sayso_common.attempts import WEBHOOK_KINDS
from sayso_common.clock import as_utc, utcnow
from sayso_common.deliveries import REVIEW_EVENTS, message_status, new_delivery, requeue, requeued_fields
from sayso_common.documents import DeliveryDoc
from sayso_common.errors import ConflictError, ErrorCode, NotFoundError, UnavailableError
from sayso_common.ids import new_id
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, DELIVERIES, MESSAGES, Database, collection, untyped
from sayso_common.secretbox import SecretBox
from sayso_common.views import DeliveryStatus
from sayso_common.webhook_bodies import render, sample_body
from sayso_common.webhook_signature import new_secret as new_signing_secret

# How long a rotated-out signing secret keeps being used by default (both signatures are sent
# meanwhile); SAYSO_WEBHOOK_ROTATION_GRACE_SECONDS.
ROTATION_GRACE = timedelta(hours=24)
# Rotated-out secrets kept at most, besides the current one (rotating twice in a row is fine).
MAX_OLD_SECRETS = 2
# How long a test send waits for the dispatcher: its request timeout (10 s) plus a margin.
TEST_WAIT_SECONDS = 20.0
# Recovery re-queues at most this many deliveries per call; the answer says if more remain.
RECOVER_LIMIT = 10_000
LIST_LIMIT = 100


class AttemptOut(Out):
    at: datetime
    duration_ms: float
    status_code: int | None = None
    error_kind: str | None = Field(default=None, description=", ".join(WEBHOOK_KINDS))
    error: str | None = None
    body: str | None = Field(default=None, description="First 1 KB of the response body")
    by: str | None = Field(default=None, description="The dispatcher process that made the attempt")


class DeliveryOut(Out):
    id: str
    event_id: str = Field(description="Also the webhook-id header: stable across retries")
    event_type: str
    message_id: str | None = None
    url: str
    source: str = Field(
        description="message, agent, callback or test: where the URL came from; endpoint: an explicit endpoint"
    )
    endpoint_id: str | None = Field(
        default=None, description="The endpoint it went to; null: the agent's own URL"
    )
    method: str = "POST"
    state: str = Field(description="pending, delivered or failed")
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    attempts: list[AttemptOut]
    created_at: datetime
    updated_at: datetime


class DeliveryList(Out):
    data: list[DeliveryOut]


class RetryOut(Out):
    requeued: list[DeliveryOut]


class TestOut(Out):
    delivered: bool
    delivery: DeliveryOut
    attempt: AttemptOut


class RecoverOut(Out):
    requeued: int
    since: datetime
    more: bool = Field(description="True if more failed deliveries remain; call again")


class SecretRotated(Out):
    webhook_secret: str = Field(description="The new signing secret (whsec_…); shown only here")
    previous_expires_at: datetime | None = Field(
        description="Until then, requests carry signatures by both the old and the new secret"
    )


def delivery_out(doc: DeliveryDoc) -> DeliveryOut:
    return DeliveryOut(
        id=doc["_id"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        message_id=doc.get("message_id"),
        url=doc["url"],
        source=doc.get("source", "agent"),
        endpoint_id=doc.get("endpoint_id"),
        method=doc.get("method", "POST"),
        state=doc["state"],
        status=doc["status"],
        attempt_count=doc.get("attempt_count", 0),
        next_attempt_at=doc.get("next_attempt_at") if doc["state"] == "pending" else None,
        last_status_code=doc.get("last_status_code"),
        last_error=doc.get("last_error"),
        attempts=[AttemptOut(**a) for a in doc.get("attempts", [])],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


_HIDDEN = {"outbox": 0, "body": 0, "headers_enc": 0}


async def list_deliveries(
    db: Database, owner_id: str, message_id: str, channel_id: str | None
) -> list[DeliveryDoc]:
    await get_message(db, Reach(owner_id), message_id, channel_id)
    return (
        await collection(db, DELIVERIES)
        .find({"message_id": message_id, "owner_id": owner_id}, _HIDDEN)
        .sort("created_at", ASCENDING)
        .limit(LIST_LIMIT)
        .to_list()
    )


async def requeue_deliveries(db: Database, docs: list[DeliveryDoc], now: datetime) -> None:
    """Re-queue ``docs`` and mark their reviews' messages as being sent again."""
    for first in range(0, len(docs), 500):
        await _requeue(db, docs[first : first + 500], now)


async def _requeue(db: Database, docs: list[DeliveryDoc], now: datetime) -> None:
    if not docs:
        return
    await collection(db, DELIVERIES).bulk_write([requeue(d, now) for d in docs], ordered=False)
    message_ids = [
        message_id
        for d in docs
        if d["event_type"] in REVIEW_EVENTS and (message_id := d.get("message_id")) is not None
    ]
    if message_ids:
        await collection(db, MESSAGES).update_many(*message_status(message_ids, "sent", now))


async def retry_message(
    db: Database, owner_id: str, message_id: str, channel_id: str | None
) -> list[DeliveryDoc]:
    """Re-send a message's failed deliveries (or, if none failed, its latest one)."""
    await get_message(db, Reach(owner_id), message_id, channel_id)
    docs = await (
        collection(db, DELIVERIES)
        .find({"message_id": message_id, "owner_id": owner_id, "source": {"$ne": "test"}}, {"outbox": 0})
        .sort("created_at", DESCENDING)
        .limit(LIST_LIMIT)
        .to_list()
    )
    if not docs:
        raise ConflictError(ErrorCode.NO_DELIVERY, "this message has no webhook delivery to retry")
    chosen = [d for d in docs if d["state"] == "failed"] or docs[:1]
    now = utcnow()
    await _requeue(db, chosen, now)
    # The deliveries as this call queued them, not as a later read finds them: a dispatcher woken
    # by the requeue may already have sent one, and the answer would no longer say what was done.
    queued = [
        cast(DeliveryDoc, {k: v for k, v in {**d, **requeued_fields(d, now)}.items() if k not in _HIDDEN})
        for d in chosen
    ]
    return sorted(queued, key=lambda d: d["created_at"])


async def recover(db: Database, owner_id: str, agent_id: str, since: datetime | None) -> RecoverOut:
    """Re-queue an agent's deliveries that failed since ``since`` (default: the last 24 h)."""
    await get_agent(db, owner_id, agent_id)
    return await recover_failed(db, {"channel_id": agent_id, "owner_id": owner_id}, since)


async def recover_failed(db: Database, scope: dict[str, Any], since: datetime | None) -> RecoverOut:
    """Re-queue the deliveries of ``scope`` (an agent's, or an endpoint's: ``{"endpoint_id"}``)
    that failed since ``since`` (default: the last 24 h), at most ``RECOVER_LIMIT`` per call. The
    same documents go again: same body, same ``webhook-id``. The caller checked ownership."""
    now = utcnow()
    start = as_utc(since) if since else now - timedelta(hours=24)
    docs = await (
        collection(db, DELIVERIES)
        .find(
            {**scope, "state": "failed", "updated_at": {"$gte": start}},
            {"outbox": 0, "attempts": 0, "body": 0},
        )
        .sort("updated_at", ASCENDING)
        .limit(RECOVER_LIMIT + 1)
        .to_list()
    )
    batch = docs[:RECOVER_LIMIT]
    await requeue_deliveries(db, batch, now)
    return RecoverOut(requeued=len(batch), since=start, more=len(docs) > RECOVER_LIMIT)


async def send_test(db: Database, owner_id: str, agent_id: str, wait: float = TEST_WAIT_SECONDS) -> TestOut:
    """Queue a signed ``webhook:test`` event to the agent's default URL and wait for the
    dispatcher's attempt (one attempt, no retries)."""
    agent = await get_agent(db, owner_id, agent_id)
    url = agent.get("webhook_url")
    if not url:
        raise ConflictError(ErrorCode.NO_WEBHOOK_URL, "the agent has no default webhook URL", "webhookUrl")
    now = utcnow()
    # One attempt, no retries; requeued_at wakes the dispatchers' change streams at once.
    doc = new_delivery(
        event_id=new_id("evt"),
        event_type="webhook.test",
        channel_id=agent_id,
        owner_id=owner_id,
        message_id=None,
        url=url,
        source="test",
        headers_enc=agent.get("webhook_headers_enc"),
        body=render(sample_body(agent_id, agent.get("webhook_format"), now)),
        schedule=[],
        now=now,
        due_at=now,
        claim=None,
    )
    doc["requeued_at"] = now
    delivery_id = doc["_id"]
    pipeline: list[dict[str, Any]] = [{"$match": {"documentKey._id": delivery_id, "operationType": "update"}}]
    # Watch first, then insert: the dispatcher's update cannot slip in before we listen.
    async with await untyped(db, DELIVERIES).watch(pipeline, full_document="updateLookup") as stream:
        await collection(db, DELIVERIES).insert_one(doc)
        try:
            async with asyncio.timeout(wait):
                async for change in stream:
                    current = change.get("fullDocument")
                    if current and current.get("attempt_count", 0) >= 1 and current.get("attempts"):
                        return TestOut(
                            delivered=current["state"] == "delivered",
                            delivery=delivery_out(current),
                            attempt=AttemptOut(**current["attempts"][-1]),
                        )
        except TimeoutError:
            pass
    # Nobody took it: withdraw it so a dispatcher coming back later does not send a stale test.
    await collection(db, DELIVERIES).delete_one({"_id": delivery_id, "attempt_count": 0, "claim": None})
    raise UnavailableError(
        ErrorCode.DISPATCHER_UNAVAILABLE,
        f"no dispatcher attempted the test delivery within {wait:.0f} s",
        retry_after=5,
    )


async def rotate_secret(
    db: Database, box: SecretBox, owner_id: str, agent_id: str, grace: timedelta = ROTATION_GRACE
) -> SecretRotated:
    """New current secret; the old one stays valid (and signs too) for ``grace``."""
    query = {"_id": agent_id, "owner_id": owner_id}
    try:
        secret, written = await signing_secrets.rotate(
            collection(db, AGENTS), query, "signing_secrets", box, new_signing_secret, grace, MAX_OLD_SECRETS
        )
    except NotFoundError:
        raise NotFoundError("agent") from None
    previous = max((as_utc(end) for s in written[1:] if (end := s["expires_at"]) is not None), default=None)
    return SecretRotated(webhook_secret=secret, previous_expires_at=previous)
