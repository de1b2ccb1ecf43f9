"""The webhook body agents receive: Placet's wire format, byte for byte stable.

The body is rendered once, when the delivery is created, and stored; retries and manual
re-sends POST the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from signoff_common.clock import iso
from signoff_common.events import Event, MessageCreated, ReviewExpired, ReviewResponded, wire_name


def _when(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def body_for(event: Event) -> dict[str, Any] | None:
    """The JSON object POSTed for ``event``; None for events agents are not sent."""
    if isinstance(event, ReviewResponded | ReviewExpired):
        message = event.data.message
        review = message.review
        body: dict[str, Any] = {
            "event": wire_name(event.type),
            "channelId": event.channel_id,
            "message_id": message.id,
            "review_type": review.type if review else None,
        }
        if isinstance(event, ReviewResponded):
            body["response"] = review.response if review else None
            body["responded_at"] = _when(review.responded_at if review else None) or iso(event.occurred_at)
        else:
            body["response"] = None
            body["expired_at"] = iso(event.occurred_at)
        return body
    if isinstance(event, MessageCreated):
        message = event.data.message
        return {
            "event": wire_name(event.type),
            "channelId": event.channel_id,
            "message_id": message.id,
            "message": message.model_dump(mode="json"),
            "created_at": iso(message.created_at),
        }
    return None


def probe_body(channel_id: str, sent_at: datetime) -> dict[str, Any]:
    return {"event": "webhook:test", "channelId": channel_id, "message_id": None, "sent_at": iso(sent_at)}


def render(body: dict[str, Any]) -> str:
    """Compact JSON; this exact text is what gets signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
