"""Expunge a message's content on its owner's request (``POST /api/v1/messages/{id}/expunge``).

What goes: the text, the metadata, the status steps, the review's payload and every answer's
content (response, feedback, default, votes' responses, edited files), the attachments' records
and bytes (GridFS), and the same content in the stored copies of its events (``events``). What
stays: the id, channel, sender, times, statuses and delivery status, marked ``expunged: true``
with ``expunged_at``, and the audit log, which gains an ``expunged`` entry of its own.

Events already published are not recalled: consumers, webhook receivers and Kafka itself keep
what they were sent, and finished deliveries keep the body they sent until the retention removes
them (:mod:`sayso_common.retention`). So that no event of the message is published *after* its
content went, the message is only changed once its outbox is empty (the relay stores each event
before it pulls it from the outbox, so by then every copy is in ``events``).

Every step but the first runs again on a repeated call, so asking again finishes an expunge cut
short and otherwise changes nothing (the audit entry is keyed by the message id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pymongo import UpdateOne

from sayso_api import files
from sayso_common.audit import actor_of
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import AuditDoc, MessageDoc
from sayso_common.errors import ConflictError, ErrorCode, NotFoundError
from sayso_common.events import Event, event_to_document
from sayso_common.ids import min_id
from sayso_common.mongo import (
    AUDIT,
    DEAD_LETTERS,
    DELIVERIES,
    EVENTS,
    MESSAGES,
    Database,
    Doc,
    collection,
    insert_new,
)
from sayso_common.outbox import event_from_events_document
from sayso_common.principals import Principal
from sayso_common.views import MESSAGE_PROJECTION, MessageView, VoteView

# How long an expunge waits for the message's unpublished events to be published (the relay
# takes milliseconds; with Kafka away it takes as long as Kafka does, and the answer is 409).
OUTBOX_WAIT: Final = 3.0
OUTBOX_POLL: Final = 0.05
# Events of a message are made after it; ids a minute older bound the scan of its channel's.
EVENT_SLACK_MS: Final = 60_000

# Top-level fields that hold content, and the review's.
# outbox_dead: entries the relay could not publish (they carry the content; see _expunge_dead).
_CONTENT: Final = ("text", "metadata", "status_events", "attachments", "outbox_dead")
_REVIEW_CONTENT: Final = (
    "payload",
    "response",
    "feedback",
    "default_response",
    "on_expire",
    "modified_file_ids",
)


@dataclass(frozen=True)
class Expunged:
    message: MessageDoc
    files: int  # attachment files removed by this call
    events: int  # stored events rewritten by this call
    deliveries: int  # finished webhook deliveries whose body and answers were removed


def message_update(doc: MessageDoc, now: datetime) -> Doc:
    """The update that removes ``doc``'s content and marks it expunged."""
    unset: dict[str, str] = dict.fromkeys(_CONTENT, "")
    review = doc.get("review")
    fields: dict[str, Any] = {"expunged": True, "expunged_at": now}
    if review is not None:
        unset |= {f"review.{name}": "" for name in _REVIEW_CONTENT}
        if "votes" in review:
            # Who voted and when stay; what they answered goes.
            fields["review.votes"] = [{**vote, "response": None} for vote in review["votes"]]
    return {"$set": fields, "$unset": unset}


def expunged_view(view: MessageView, at: datetime) -> MessageView:
    """``view`` (a message as an event carries it) without its content, marked expunged."""
    review = view.review
    if review is not None:
        votes = (
            [v.model_copy(update={"response": None}) for v in review.votes]
            if review.votes is not None
            else None
        )
        review = review.model_copy(
            update={
                "payload": {},
                "response": None,
                "feedback": None,
                "default_response": None,
                "on_expire": None,
                "modified_file_ids": None,
                "votes": votes,
            }
        )
    return view.model_copy(
        update={
            "text": None,
            "metadata": None,
            "attachments": [],
            "status_events": [],
            "review": review,
            "expunged": True,
            "expunged_at": at,
        }
    )


def expunged_event(event: Event, at: datetime) -> Event:
    """``event`` with the content of the message it carries removed (other events unchanged)."""
    data = getattr(event, "data", None)
    message = getattr(data, "message", None)
    if data is None or not isinstance(message, MessageView):
        return event
    update: dict[str, Any] = {"message": expunged_view(message, at)}
    vote = getattr(data, "vote", None)
    if isinstance(vote, VoteView):
        update["vote"] = vote.model_copy(update={"response": None})
    return event.model_copy(update={"data": data.model_copy(update=update)})


def audit_entry(doc: MessageDoc, who: Principal, at: datetime) -> AuditDoc:
    return {
        "_id": f"expunge:{doc['_id']}",
        "at": at,
        "owner_id": doc["owner_id"],
        "channel_id": doc["channel_id"],
        "message_id": doc["_id"],
        "kind": "expunged",
        "actor": actor_of(f"key:{who.key_id}" if who.kind == "api_key" else who.owner_id),
        "decision": None,
        "rule": None,
        "policy_version": None,
        "detail": {},
    }


async def expunge_message(db: Database, who: Principal, message_id: str, channel_id: str | None) -> Expunged:
    """Expunge one of ``who``'s owner's messages (404 for anyone else's, members' included)."""
    query: Doc = {"_id": message_id, "owner_id": who.owner_id}
    if channel_id:
        query["channel_id"] = channel_id
    before, at = await _mark(db, query)
    # Its attachments (linked to it), and the files a reviewer's edit made that no message took.
    review = before.get("review")
    edited = list((review.get("modified_file_ids") or {}).values()) if review is not None else []
    removed = await files.remove_files(
        db,
        {
            "owner_id": who.owner_id,
            "$or": [{"message_id": message_id}, {"_id": {"$in": edited}, "message_id": None}],
        },
    )
    rewritten = await _expunge_events(db, before, at)
    cleared = await _expunge_deliveries(db, message_id)
    await _expunge_dead_letters(db, message_id)
    await insert_new(collection(db, AUDIT), [audit_entry(before, who, at)])
    after = await collection(db, MESSAGES).find_one({"_id": message_id}, MESSAGE_PROJECTION)
    if after is None:  # deleted in the meantime
        raise NotFoundError("message")
    return Expunged(after, removed, rewritten, cleared)


async def _expunge_deliveries(db: Database, message_id: str) -> int:
    """Finished webhook deliveries of the message keep their record (url, attempts' statuses and
    times) but not the body they sent nor the receivers' answers."""
    done = await collection(db, DELIVERIES).update_many(
        {"message_id": message_id, "state": {"$in": ["delivered", "failed"]}, "body": {"$ne": ""}},
        {"$set": {"body": "", "attempts.$[].body": None}},
    )
    return done.modified_count


async def _expunge_dead_letters(db: Database, message_id: str) -> None:
    """Entries of the message the relay could not publish, moved aside with their content."""
    await collection(db, DEAD_LETTERS).update_many(
        {"collection": str(MESSAGES), "document_id": message_id},
        {"$set": {"entry": {"expunged": True}}},
    )


async def _mark(db: Database, query: Doc) -> tuple[MessageDoc, datetime]:
    """Remove the content (once); the message as it was before (what it names to delete next)
    and when it was expunged."""
    messages = collection(db, MESSAGES)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OUTBOX_WAIT
    while True:
        doc = await messages.find_one(query, {"outbox_dead": 0})
        if doc is None:
            raise NotFoundError("message")
        if doc.get("expunged"):
            return doc, as_utc(doc.get("expunged_at") or utcnow())
        review = doc.get("review")
        if review is not None and review["status"] == "pending":
            raise ConflictError(
                ErrorCode.REVIEW_PENDING,
                "the message's review is still pending: answer it or let it expire first",
            )
        if doc.get("stream_state") == "streaming":
            raise ConflictError(
                ErrorCode.STREAM_OPEN, "the message is still streaming: complete or abort it first"
            )
        sending = await collection(db, DELIVERIES).count_documents(
            {"message_id": doc["_id"], "state": "pending"}, limit=1
        )
        if sending:
            # A delivery still retrying would send the content after the expunge.
            raise ConflictError(
                ErrorCode.DELIVERIES_PENDING,
                "a webhook delivery of the message is still being sent (or retried): "
                "try again once it is delivered or failed",
            )
        if not doc.get("outbox"):
            now = utcnow()
            done = await messages.update_one(
                {**query, "expunged": {"$ne": True}, "outbox.0": {"$exists": False}}, message_update(doc, now)
            )
            if done.modified_count:
                return doc, now
            continue  # an event was added meanwhile, or another call expunged it: read again
        if loop.time() >= deadline:
            raise ConflictError(
                ErrorCode.EVENTS_PENDING,
                "the message's latest events are still being published; try again in a moment",
            )
        await asyncio.sleep(OUTBOX_POLL)


async def _expunge_events(db: Database, doc: MessageDoc, at: datetime) -> int:
    """Rewrite the stored copies of the message's events without its content."""
    events = collection(db, EVENTS)
    created_ms = int(as_utc(doc["created_at"]).timestamp() * 1000)
    stored = await events.find(
        {
            "channel_id": doc["channel_id"],
            "_id": {"$gte": min_id("evt", created_ms - EVENT_SLACK_MS)},
            "data.message.id": doc["_id"],
            "data.message.expunged": {"$ne": True},
        }
    ).to_list()
    ops = []
    for stored_doc in stored:
        event = event_from_events_document(stored_doc)
        cleaned = expunged_event(event, at)
        if cleaned is not event:
            ops.append(
                UpdateOne({"_id": stored_doc["_id"]}, {"$set": {"data": event_to_document(cleaned)["data"]}})
            )
    if ops:
        await events.bulk_write(ops, ordered=False)
    return len(ops)
