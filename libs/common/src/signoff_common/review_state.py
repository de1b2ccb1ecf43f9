"""A review's two ways to close, the one home of each: answered (``completed``, written by the
API) and expired (written by the expirer). Each is a single conditional update on
``review.status: pending`` that also appends the event to the message's outbox, so a response
racing the deadline either lands first (and the expiry matches nothing) or loses (and gets 409),
never both, and there is exactly one ``review.*`` event per review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from signoff_common.documents import MessageDoc, ReviewDoc
from signoff_common.events import MessageData, ReviewExpired, ReviewResponded, event_to_document
from signoff_common.views import MessageView, message_view


@dataclass(frozen=True)
class Answer:
    """What a human's response records on the review."""

    response: Any
    responded_by: str
    feedback: str | None = None
    modified_file_ids: dict[str, str] | None = None


@dataclass(frozen=True)
class Completion:
    """The conditional update that answers a review, and the message as it then reads."""

    filter: dict[str, Any]
    update: dict[str, Any]
    view: MessageView


def completed(doc: MessageDoc, answer: Answer, now: datetime) -> Completion:
    """Answer the pending review of ``doc``. The deadline is part of the condition: an overdue
    review the expirer has not reached yet is already closed."""
    review = doc["review"]
    outcome: dict[str, Any] = {
        "status": "completed",
        "response": answer.response,
        "responded_by": answer.responded_by,
        "responded_at": now,
        "completed_at": now,
    }
    if answer.feedback is not None:
        outcome["feedback"] = answer.feedback
    if answer.modified_file_ids is not None:
        outcome["modified_file_ids"] = answer.modified_file_ids
    answered_review: ReviewDoc = {**review, **outcome}  # type: ignore[typeddict-item]
    answered: MessageDoc = {**doc, "delivery_status": "sent", "updated_at": now, "review": answered_review}
    view = message_view(answered)
    event = ReviewResponded(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=now,
        data=MessageData(message=view),
    )
    return Completion(
        filter={
            "_id": doc["_id"],
            "owner_id": doc["owner_id"],
            "review.status": "pending",
            "review.expires_at": {"$gt": now},
        },
        update={
            "$set": {
                **{f"review.{k}": v for k, v in outcome.items()},
                "delivery_status": "sent",
                "updated_at": now,
            },
            "$push": {"outbox": event_to_document(event)},
        },
        view=view,
    )


def expired(doc: MessageDoc, now: datetime) -> UpdateOne:
    """Expire the pending review of ``doc`` (a no-op if it was answered meanwhile)."""
    closed: ReviewDoc = {**doc["review"], "status": "expired", "expired_at": now}
    view = message_view({**doc, "updated_at": now, "review": closed})
    event = ReviewExpired(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=now,
        data=MessageData(message=view),
    )
    return UpdateOne(
        {"_id": doc["_id"], "review.status": "pending"},
        {
            "$set": {"review.status": "expired", "review.expired_at": now, "updated_at": now},
            "$push": {"outbox": event_to_document(event)},
        },
    )
