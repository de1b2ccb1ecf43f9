"""Stored documents for unit tests of the state-change builders (``review_state`` and friends)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc


def pending_approval(payload: dict[str, Any], **review: Any) -> MessageDoc:
    """``msg_1`` in channel ``agt_1`` of ``usr_owner``: an approval review, pending for an hour,
    with ``review`` fields added or replaced."""
    now = utcnow()
    return {
        "_id": "msg_1",
        "channel_id": "agt_1",
        "owner_id": "usr_owner",
        "text": "Deploy?",
        "created_at": now,
        "review": {
            "type": "approval",
            "payload": payload,
            "status": "pending",
            "expires_at": now + timedelta(hours=1),
            **review,  # type: ignore[typeddict-item]
        },
    }
