"""The public JSON shape of a message, shared by the API's responses and every event payload.

Stored documents use snake_case; the wire uses Placet's camelCase. One conversion, here, so the
API, the realtime gateway and the dispatcher can never disagree on what a message looks like.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from signoff_common.clock import as_utc

ReviewType = Literal["approval", "selection", "form", "text-input", "freeform"]
ReviewStatus = Literal["pending", "completed", "expired"]
MessageStatus = Literal["info", "success", "warning", "error"]
SenderType = Literal["agent", "user", "webhook", "system"]
DeliveryStatus = Literal["sent", "webhook_delivered", "webhook_failed", "agent_received"]


class _View(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, serialize_by_alias=True
    )


class CallbackView(_View):
    url: str
    method: str = "POST"


class ReviewView(_View):
    type: ReviewType
    payload: dict[str, Any] = Field(default_factory=dict)
    status: ReviewStatus
    expires_at: datetime | None = None
    response: Any = None
    responded_by: str | None = None
    responded_at: datetime | None = None
    callback: CallbackView | None = None


class MessageView(_View):
    id: str
    channel_id: str
    sender_type: SenderType = "agent"
    sender_name: str | None = None
    sender_avatar_url: str | None = None
    text: str
    status: MessageStatus = "info"
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    iteration_of: str | None = None
    group_id: str | None = None
    client_id: str | None = None
    correlation_id: str | None = None
    delivery_status: DeliveryStatus | None = None
    acknowledged: bool = False
    review: ReviewView | None = None
    created_at: datetime


# Projection for reading a message to show it: internal fields never leave the database.
MESSAGE_PROJECTION: dict[str, int] = {"outbox": 0, "outbox_dead": 0, "request_hash": 0}


def _dt(value: Any) -> datetime | None:
    return as_utc(value) if isinstance(value, datetime) else None


def message_view(doc: dict[str, Any]) -> MessageView:
    """Build the public view of a stored message document."""
    review = doc.get("review")
    review_view = None
    if review:
        callback = review.get("callback")
        review_view = ReviewView(
            type=review["type"],
            payload=review.get("payload") or {},
            status=review["status"],
            expires_at=_dt(review.get("expires_at")),
            response=review.get("response"),
            responded_by=review.get("responded_by"),
            responded_at=_dt(review.get("responded_at")),
            callback=(
                CallbackView(url=callback["url"], method=callback.get("method", "POST")) if callback else None
            ),
        )
    created = _dt(doc.get("created_at"))
    assert created is not None, "stored messages always have created_at"
    return MessageView(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        sender_type=doc.get("sender_type", "agent"),
        sender_name=doc.get("sender_name"),
        sender_avatar_url=doc.get("sender_avatar_url"),
        text=doc["text"],
        status=doc.get("status", "info"),
        metadata=doc.get("metadata"),
        webhook_url=doc.get("webhook_url"),
        iteration_of=doc.get("iteration_of"),
        group_id=doc.get("group_id"),
        client_id=doc.get("client_id"),
        correlation_id=doc.get("correlation_id"),
        delivery_status=doc.get("delivery_status"),
        acknowledged=bool(doc.get("acknowledged_at")),
        review=review_view,
        created_at=created,
    )
