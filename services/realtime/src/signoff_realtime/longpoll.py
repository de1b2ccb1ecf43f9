"""``GET /api/v1/reviews/{id}/wait``: answer at once if the review is closed, else wait for the
event that closes it, up to the timeout.

Placet's contract: ``timeout`` in milliseconds, default and cap 30 000, and a wait that runs out
answers ``status: "pending"`` ("no response yet, retry the poll") — agents are coded against
that word, so it is kept; ``timedOut: true`` says why it came back.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from signoff_common.mongo import MESSAGES, Database, Doc
from signoff_common.views import MESSAGE_PROJECTION, MessageView, message_view
from signoff_realtime.metrics import WAITS
from signoff_realtime.waiters import Waiters

_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def parse_timeout_ms(raw: str | None, default: int, cap: int) -> int:
    """Read ``timeout`` the way Placet's ``parseInt(timeout) || default`` does: leading digits
    count ("1500ms" is 1500), anything unreadable, zero or negative falls back to the default,
    and nothing waits longer than the cap."""
    match = _LEADING_INT.match(raw or "")
    value = int(match.group(1)) if match else 0
    if value <= 0:
        value = default
    return min(value, cap)


def answer(view: MessageView, *, timed_out: bool = False) -> dict[str, Any]:
    review = view.review
    assert review is not None, "only messages with a review are waited on"
    body: dict[str, Any] = {
        "status": review.status,
        "message": view.model_dump(mode="json"),
        "response": review.response if review.status == "completed" else None,
    }
    if timed_out:
        body["timedOut"] = True
    return body


async def find_review(db: Database, owner_id: str, review_id: str, channel_id: str | None) -> Doc | None:
    query: Doc = {"_id": review_id, "owner_id": owner_id, "review": {"$type": "object"}}
    if channel_id:
        query["channel_id"] = channel_id
    return await db[MESSAGES].find_one(query, MESSAGE_PROJECTION)


async def wait_for_review(
    db: Database,
    waiters: Waiters,
    owner_id: str,
    review_id: str,
    channel_id: str | None,
    timeout: float,
) -> dict[str, Any] | None:
    """The long-poll answer, or None when the review does not exist or is not the owner's."""
    with waiters.register(review_id) as outcome:
        doc = await find_review(db, owner_id, review_id, channel_id)
        if doc is None:
            return None
        view = message_view(doc)
        assert view.review is not None
        if view.review.status == "pending":
            try:
                event = await asyncio.wait_for(outcome, timeout)
            except TimeoutError:
                WAITS.labels("pending").inc()
                return answer(view, timed_out=True)
            view = event.data.message
    body = answer(view)
    WAITS.labels(body["status"]).inc()
    return body
