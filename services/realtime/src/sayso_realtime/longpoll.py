"""``GET /api/v1/reviews/{id}/wait``: answer at once if the review is closed, else wait for the
event that closes it, up to the timeout.

Placet's contract: ``timeout`` in milliseconds, default and cap 30 000, and a wait that runs out
answers ``status: "pending"`` ("no response yet, retry the poll") — agents are coded against
that word, so it is kept; ``timedOut: true`` says why it came back. A review that expired with
an ``onExpire`` default also answers ``defaultResponse`` (its ``response`` stays null, as the
expired webhook's does).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from pymongo.errors import NetworkTimeout

from sayso_common import numerals
from sayso_common.documents import MessageDoc
from sayso_common.membership import Reach
from sayso_common.mongo import MESSAGES, Database, Doc, collection
from sayso_common.views import FULL, MESSAGE_PROJECTION, MessageView, message_view_for, seen_by
from sayso_realtime.metrics import WAITS
from sayso_realtime.waiters import Outcome, Waiters

T = TypeVar("T")


def parse_timeout_ms(raw: str | None, default: int, cap: int) -> int:
    """Read ``timeout`` the way Placet's ``parseInt(timeout) || default`` does: leading digits
    count ("1500ms" is 1500), anything unreadable, zero or negative falls back to the default,
    and nothing waits longer than the cap."""
    value = numerals.leading_int(raw, cap)
    return default if value is None or value <= 0 else value


def answer(view: MessageView, *, timed_out: bool = False, full: bool = True) -> dict[str, Any]:
    """The long-poll's answer. ``full`` for the agent (an API key): the long-poll is how it
    receives the answer, password answers included (as the webhook and as Placet's wait
    endpoint). A person waiting with a session (the owner or a member) reads it as the API shows
    it to them, passwords redacted."""
    review = view.review
    assert review is not None, "only messages with a review are waited on"
    message = view.model_dump(mode="json", context=FULL if full else None)
    shown = message["review"]
    body: dict[str, Any] = {
        "status": review.status,
        "message": message,
        "response": shown["response"] if review.status == "completed" else None,
    }
    if review.default_response is not None:
        body["defaultResponse"] = shown["defaultResponse"]
    if timed_out:
        body["timedOut"] = True
    return body


def encode(body: dict[str, Any]) -> bytes:
    """The answer's bytes, as Starlette's ``JSONResponse`` renders them."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def find_review(
    db: Database, reach: Reach, review_id: str, channel_id: str | None
) -> MessageDoc | None:
    query: Doc = {"_id": review_id, **reach.scope(), "review": {"$type": "object"}}
    if channel_id:
        query["channel_id"] = channel_id
    return await collection(db, MESSAGES).find_one(query, MESSAGE_PROJECTION)


async def current_answer(
    db: Database, reach: Reach, review_id: str, channel_id: str | None, full: bool = True
) -> dict[str, Any] | None:
    doc = await find_review(db, reach, review_id, channel_id)
    # A member of the channel waits too, and reads it as the API shows it to them.
    return None if doc is None else answer(message_view_for(doc, reach.owner_id), full=full)


# However short the poll, its first read gets this long before the answer is 503 (a 1 ms poll
# is Placet's way to ask "answered yet?", not to fail at once).
MIN_READ_SECONDS = 1.0


def ready_by(arrived: float, timeout: float) -> float:
    """When everything a poll does before it parks (its credential, its reach, its first read)
    must be done, on the loop's clock: the poll's timeout after its arrival, at least
    MIN_READ_SECONDS."""
    return arrived + max(timeout, MIN_READ_SECONDS)


async def within(until: float, read: Awaitable[T]) -> T:
    """``read``, unless it is not done by ``until`` (loop time)."""
    seconds = max(0.0, until - asyncio.get_running_loop().time())
    try:
        return await asyncio.wait_for(read, seconds)
    except TimeoutError:
        # A ConnectionFailure: the endpoint answers it 503 with Retry-After, as for MongoDB down.
        raise NetworkTimeout(f"MongoDB did not answer within {seconds:.1f}s") from None


def _time_out(outcome: asyncio.Future[Outcome]) -> None:
    if not outcome.done():
        outcome.set_exception(TimeoutError())


async def wait_for_review(
    db: Database,
    waiters: Waiters,
    reach: Reach,
    review_id: str,
    channel_id: str | None,
    timeout: float,
    arrived: float | None = None,
    *,
    full: bool = True,
) -> bytes | None:
    """The long-poll answer (JSON), or None when the review does not exist or is outside
    ``reach``. ``arrived`` (loop time) is when the request came in, if work was done before.

    A parked poll holds only its future, a timer and the encoded timed-out answer: not the
    MongoDB document nor the view model (ten thousand parked polls are the normal case)."""
    loop = asyncio.get_running_loop()
    # The timeout runs from the request's arrival: a slow first read (MongoDB just back, a busy
    # host) must not lengthen how long the agent is held. Nor may a read that does not come back:
    # pymongo bounds server selection, not the wait for a connection or an answer.
    start = loop.time() if arrived is None else arrived
    deadline = start + timeout
    with waiters.register(review_id) as outcome:
        body = await within(ready_by(start, timeout), current_answer(db, reach, review_id, channel_id, full))
        if body is None:
            return None
        if body["status"] == "pending":
            timed_out = encode({**body, "timedOut": True})
            del body  # not kept alive in this frame for the whole wait
            # The timer resolves the waiter's own future: no wait_for task, no second future.
            timer = loop.call_later(max(0.0, deadline - loop.time()), _time_out, outcome)
            try:
                event = await outcome
            except TimeoutError:
                WAITS.labels("pending").inc()
                return timed_out
            finally:
                timer.cancel()
            body = answer(seen_by(event.data.message, event.owner_id, reach.owner_id), full=full)
    WAITS.labels(body["status"]).inc()
    return encode(body)
