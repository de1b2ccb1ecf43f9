"""Messages and reviews: creation (the hot path), queries, responses.

Every state change is one single-document write that also appends its event to the document's
``outbox`` array; the relay publishes it. No request handler talks to Kafka.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from pymongo.errors import DuplicateKeyError

from sayso_api import files, remembered
from sayso_api import policies as policy_store
from sayso_api.auth import normalise_email
from sayso_api.reviewing import MongoReviewStore, Reviewing
from sayso_api.reviewing.service import review_error
from sayso_api.schemas import CONTENT_FIELDS, MessageIn, ReviewIn
from sayso_api.settings import ApiSettings
from sayso_common import deleted_channels, membership, policies, quorum, review_state
from sayso_common.action_digest import action_digest
from sayso_common.batching import GroupedInserts
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import AttachmentDoc, CallbackDoc, MessageDoc, ReviewDoc
from sayso_common.errors import (
    ConflictError,
    ErrorCode,
    InvalidError,
    NotFoundError,
    TooLargeError,
)
from sayso_common.events import MessageCreated, MessageData, outbox_entry
from sayso_common.ids import min_id, new_id
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, LEFT_EVENTS, MESSAGES, USERS, Database, Doc, collection, insert_new
from sayso_common.reviews import ReviewError, normalise_payload, validate_response
from sayso_common.secretbox import SecretBox
from sayso_common.views import MESSAGE_PROJECTION, MessageView, message_view, message_view_for

log = logging.getLogger(__name__)

_INSERTS: weakref.WeakKeyDictionary[Database, GroupedInserts[MessageDoc]] = weakref.WeakKeyDictionary()


def _inserts(db: Database) -> GroupedInserts[MessageDoc]:
    """This process's grouped message inserts: the messages created in one event-loop turn (a
    fleet of agents posting at once) go to mongod as one ``insert_many``, each request still
    answered with its own outcome (see sayso_common.batching)."""
    inserts = _INSERTS.get(db)
    if inserts is None:
        inserts = _INSERTS[db] = GroupedInserts(collection(db, MESSAGES))
    return inserts


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


def request_hash(body: MessageIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json", exclude={"client_id"}), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_limits(settings: ApiSettings, body: MessageIn) -> None:
    if not body.has_content():
        # Checked here rather than in the model so the error can name a field.
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR, f"a message must contain at least one of: {CONTENT_FIELDS}", "text"
        )
    if body.text is not None and len(body.text) > settings.max_text_chars:
        raise TooLargeError(
            ErrorCode.TEXT_TOO_LARGE,
            f"text is limited to {settings.max_text_chars} characters (SAYSO_MAX_TEXT_CHARS)",
            "text",
        )
    if body.metadata is not None and _json_size(body.metadata) > settings.max_metadata_bytes:
        raise TooLargeError(
            ErrorCode.METADATA_TOO_LARGE,
            f"metadata is limited to {settings.max_metadata_bytes} bytes (SAYSO_MAX_METADATA_BYTES)",
            "metadata",
        )
    if body.review and _json_size(body.review.payload) > settings.max_payload_bytes:
        raise TooLargeError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"review.payload is limited to {settings.max_payload_bytes} bytes (SAYSO_MAX_PAYLOAD_BYTES)",
            "review.payload",
        )


def build_review(settings: ApiSettings, body: MessageIn, box: SecretBox, now: datetime) -> ReviewDoc | None:
    review = body.review
    if review is None:
        return None
    try:
        payload = normalise_payload(review.type, review.payload, quorum=review.quorum is not None)
    except ReviewError as exc:
        raise review_error(exc) from None
    # As Placet: expiresInSeconds wins over expiresAt, and a deadline past the maximum is capped
    # (not refused), so an agent asking for "a week" still gets a review.
    longest = settings.review_max_ttl_seconds
    if review.expires_in_seconds is not None:
        expires_at = now + timedelta(seconds=min(review.expires_in_seconds, longest))
    elif review.expires_at is not None:
        expires_at = as_utc(review.expires_at)
        if expires_at <= now:
            raise InvalidError(
                ErrorCode.INVALID_REVIEW, "expiresAt must be in the future", "review.expiresAt"
            )
        expires_at = min(expires_at, now + timedelta(seconds=longest))
    else:
        expires_at = now + timedelta(seconds=min(settings.review_default_ttl_seconds, longest))
    doc: ReviewDoc = {"type": review.type, "payload": payload, "status": "pending", "expires_at": expires_at}
    if review.on_expire is not None:
        doc["on_expire"] = {"response": _default_response(review.type, payload, review.on_expire.response)}
    if review.quorum is not None:
        _check_quorum(review.type, payload)
        doc["quorum"] = {"approvals": review.quorum.approvals}
        doc["votes"] = []
    _notification_policy(review, doc, (expires_at - now).total_seconds())
    if review.callback:
        callback: CallbackDoc = {"url": review.callback.url, "method": review.callback.method}
        if review.callback.headers:
            callback["headers_enc"] = box.seal(json.dumps(review.callback.headers))
        doc["callback"] = callback
    return doc


def _notification_policy(review: ReviewIn, doc: ReviewDoc, lifetime: float) -> None:
    """Store ``reminders`` and ``escalation`` (the notifier carries them out), refusing any that
    could never happen before the deadline."""
    for i, seconds in enumerate(review.reminders or []):
        if seconds >= lifetime:
            raise InvalidError(
                ErrorCode.INVALID_REVIEW, f"must be less than the review's lifetime ({lifetime:.0f} s)",
                f"review.reminders[{i}]",
            )  # fmt: skip
    for i, step in enumerate(review.escalation or []):
        if step.after_seconds >= lifetime:
            raise InvalidError(
                ErrorCode.INVALID_REVIEW, f"must be less than the review's lifetime ({lifetime:.0f} s)",
                f"review.escalation[{i}].afterSeconds",
            )  # fmt: skip
    if review.reminders:
        doc["reminders"] = sorted(set(review.reminders), reverse=True)
    if review.escalation:
        doc["escalation"] = [
            {"after_seconds": step.after_seconds, "notify": sorted({normalise_email(e) for e in step.notify})}
            for step in review.escalation
        ]


async def _check_escalation(db: Database, channel_id: str, review: ReviewIn) -> None:
    """Refuse an escalation address that is none of the channel's reviewers (its owner and
    members): an agent's key tells the people of its channel, nobody else. Decided from the
    reviewers' own documents (read by id), never by looking the address up, so an address with
    an account elsewhere and one with none get the same answer."""
    agent = await collection(db, AGENTS).find_one({"_id": channel_id}, {"owner_id": 1, "members.user_id": 1})
    if agent is None:
        raise NotFoundError("channel")
    ids = sorted(membership.reviewers(agent))
    found = await collection(db, USERS).find({"_id": {"$in": ids}}, {"email": 1}).to_list()
    reviewers = membership.reviewers_by_email(agent, {u["_id"]: u for u in found})
    for i, step in enumerate(review.escalation or []):
        for j, address in enumerate(step.notify):
            if normalise_email(address) not in reviewers:
                raise InvalidError(
                    ErrorCode.INVALID_REVIEW,
                    "is not the owner or a member of this channel: escalations only go to its reviewers",
                    f"review.escalation[{i}].notify[{j}]",
                )  # fmt: skip


def _default_response(review_type: str, payload: dict[str, Any], response: Any) -> Any:
    """``onExpire.response``, checked exactly as a human's answer to this review would be."""
    try:
        return validate_response(review_type, payload, response)
    except ReviewError as exc:
        raise InvalidError(ErrorCode.INVALID_REVIEW, exc.message, f"review.onExpire.{exc.field}") from None


def _check_quorum(review_type: str, payload: dict[str, Any]) -> None:
    if review_type != "approval":
        raise InvalidError(ErrorCode.INVALID_REVIEW, "only approval reviews take a quorum", "review.quorum")
    if not quorum.can_decide(payload):
        raise InvalidError(
            ErrorCode.INVALID_REVIEW,
            "a quorum needs an approving option (id approve, approved, accept, accepted, yes or ok, "
            "or style primary or success) and one that does not approve",
            "review.payload.options",
        )


async def _attachments(
    db: Database, settings: ApiSettings, owner_id: str, body: MessageIn
) -> list[AttachmentDoc]:
    found: list[AttachmentDoc] = []
    if body.attachment_ids:
        found += await files.resolve_attachments(db, owner_id, body.channel_id, body.attachment_ids)
    if body.text_attachments:
        found += await files.store_text_attachments(
            db, settings, owner_id, body.channel_id, body.text_attachments
        )
    return found


async def create_message(
    db: Database,
    settings: ApiSettings,
    box: SecretBox,
    owner_id: str,
    body: MessageIn,
    *,
    sender_type: str = "agent",
    sender_id: str | None = None,
    sender_name: str | None = None,
    sender_avatar_url: str | None = None,
    correlation_id: str | None = None,
    _retries: int = 3,
) -> tuple[MessageView, bool]:
    """Insert a message with its ``message.created`` event. Returns (view, replayed)."""
    check_limits(settings, body)
    now = utcnow()
    review = build_review(settings, body, box, now)
    if body.review is not None and body.review.escalation:
        await _check_escalation(db, body.channel_id, body.review)
    chain = await Reviewing(MongoReviewStore(db)).iteration(body.iteration_of, body.channel_id)
    metadata = body.metadata
    if review is not None and review["type"] == "freeform" and review["payload"].get("plugin") is not None:
        # Placet copies the renderer's name to metadata.plugin, where the inbox looks for it.
        metadata = {**(metadata or {}), "plugin": review["payload"]["plugin"]}
    if body.client_id and (body.attachment_ids or body.text_attachments):
        # A retry must not try to attach the same files again (or store its texts twice): the
        # original answers first. (Without attachments the unique index finds the retry cheaper.)
        known = await collection(db, MESSAGES).find_one(
            {"channel_id": body.channel_id, "client_id": body.client_id}, {"_id": 1}
        )
        if known is not None:
            return await _replay(db, body), True
    attachments = await _attachments(db, settings, owner_id, body)
    message_id = new_id("msg")
    fields: Doc = {
        "_id": message_id,
        "channel_id": body.channel_id,
        "owner_id": owner_id,
        "sender_type": sender_type,
        "created_at": now,
        "updated_at": now,
    }
    optional = {
        "text": body.text,
        "status": body.status,
        "sender_id": sender_id,
        "sender_name": sender_name,
        "sender_avatar_url": sender_avatar_url,
        "metadata": metadata,
        "webhook_url": body.webhook_url,
        "webhook_format": body.webhook_format,
        "iteration_of": body.iteration_of,
        "group_id": chain[0] if chain else None,
        "iteration": chain[1] if chain else None,
        "client_id": body.client_id,
        "correlation_id": correlation_id,
        "review": review,
        "attachments": [{**a, "message_id": message_id} for a in attachments] or None,
        "stream_id": body.stream_id,
        "stream_state": (body.stream_state or "streaming") if body.stream_id else None,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    # (Assembled as a plain dict, absent fields left out; typed from here on.)
    doc = cast(MessageDoc, fields)
    if body.client_id:
        doc["request_hash"] = request_hash(body)
    decision = policies.ASK
    answer: review_state.Answer | None = None
    if review is not None and body.review is not None:
        doc["delivery_status"] = "sent"
        doc["review"]["content_digest"] = review_state.content_digest(doc)
        doc["review"]["action_digest"] = body.review.action_digest or action_digest(
            body.review.payload, body.metadata
        )
        decision = await policy_store.decision_for(
            db, owner_id, body.channel_id, body.text, review["type"], body.review.payload,
            review["payload"], body.metadata, dict(review["quorum"]) if "quorum" in review else None,
        )  # fmt: skip
        risk = policies.review_risk(body.metadata, decision)
        review["risk_rank"] = policies.RISK_RANK[risk] if risk else 0
        if risk is not None:
            review["risk"] = risk
        if decision.action == "ask" and decision.overrides is not None:
            _apply_overrides(settings, review, decision.overrides, owner_id, now)
        answer = await _answer_on_arrival(db, owner_id, body.channel_id, body.metadata, review, decision)
    if answer is not None:
        # A policy or a remembered approval answers it in the same insert: the POST already
        # returns it completed.
        doc = review_state.completed_on_arrival(doc, answer, now)
        view = message_view(doc)
    else:
        fell_back = policies.fallback(decision)
        if fell_back is not None:
            doc["review"]["policy_fallback"] = fell_back
        view = message_view(doc)
        event = MessageCreated(
            channel_id=body.channel_id, owner_id=owner_id, occurred_at=now, data=MessageData(message=view)
        )
        doc["outbox"] = [outbox_entry(event)]
    try:
        await _inserts(db).insert(doc)
    except DuplicateKeyError as exc:
        if "iteration_unique" in str(exc) and _retries > 0:
            # Two follow-ups raced for the same number: take the next one.
            return await create_message(
                db, settings, box, owner_id, body, sender_type=sender_type, sender_id=sender_id,
                sender_name=sender_name, sender_avatar_url=sender_avatar_url,
                correlation_id=correlation_id, _retries=_retries - 1,
            )  # fmt: skip
        if "stream_id_unique" in str(exc):
            # As Placet: the first POST of a stream is idempotent; a re-POST returns the draft.
            return await _existing_stream(db, owner_id, body), True
        if not body.client_id:
            raise
        return await _replay(db, body), True
    if attachments:
        await files.link(db, message_id, attachments)
    return view, False


async def _answer_on_arrival(
    db: Database,
    owner_id: str,
    channel_id: str,
    metadata: dict[str, Any] | None,
    review: ReviewDoc,
    decision: policies.Decision,
) -> review_state.Answer | None:
    """Who answers a new review before a person sees it, if anyone. A live remembered approval
    of the same action comes first (a person approved exactly this), except on a quorum review
    (the agent's or an ask rule's: one person is not N) and where a rule rejects, or meant to
    (a policy is the owner's word: a rule saved after the approval was remembered still holds);
    then the rule that decides, if one does."""
    rejects = decision.rule_action == "reject"
    if review["type"] == "approval" and "quorum" not in review and not rejects:
        found = await remembered.approval_for(db, owner_id, channel_id, metadata, review.get("payload") or {})
        if found is not None:
            return review_state.Answer(found[0], None, decided_by=found[1])
    if decision.decides:
        return review_state.Answer(decision.response, None, decided_by=policies.decided_by(decision))
    return None


def _apply_overrides(
    settings: ApiSettings, review: ReviewDoc, overrides: policies.AskOverrides, owner_id: str, now: datetime
) -> None:
    """An ask rule's changes to the review it leaves to people (sayso_common.policies
    .apply_overrides), written into ``review``. Notices that could no longer happen before a
    shortened deadline are dropped, never refused: a policy never stops a message."""
    expires_at = review["expires_at"]
    on_expire = review.get("on_expire")
    asked = policies.Asked(
        approvals=review["quorum"]["approvals"] if "quorum" in review else None,
        lifetime=(expires_at - now).total_seconds(),
        on_expire=on_expire["response"] if on_expire else None,
    )
    payload = review.get("payload") or {}
    done = policies.apply_overrides(
        overrides, review["type"], payload, asked, owner_id=owner_id,
        longest=settings.review_max_ttl_seconds, check=validate_response,
    )  # fmt: skip
    if done.approvals is not None and done.approvals != asked.approvals:
        review["quorum"] = {"approvals": done.approvals}
        review.setdefault("votes", [])
    if done.lifetime < asked.lifetime:
        review["expires_at"] = now + timedelta(seconds=done.lifetime)
        if "reminders" in review:
            review["reminders"] = [r for r in review["reminders"] if r < done.lifetime]
        if "escalation" in review:
            review["escalation"] = [e for e in review["escalation"] if e["after_seconds"] < done.lifetime]
    if done.on_expire is not None:
        review["on_expire"] = {"response": done.on_expire}
    if done.notify is not None:
        review["notify"] = list(done.notify)
    for why in done.skipped:
        log.info("policy override not applied: %s", why)


async def _existing_stream(db: Database, owner_id: str, body: MessageIn) -> MessageView:
    existing = await collection(db, MESSAGES).find_one(
        {"owner_id": owner_id, "stream_id": body.stream_id}, MESSAGE_PROJECTION
    )
    if existing is None or existing["channel_id"] != body.channel_id:
        raise ConflictError(ErrorCode.STREAM_EXISTS, "this streamId is in use in another channel", "streamId")
    return message_view(existing)


async def _replay(db: Database, body: MessageIn) -> MessageView:
    existing = await collection(db, MESSAGES).find_one(
        {"channel_id": body.channel_id, "client_id": body.client_id}, {"outbox": 0}
    )
    if existing is None:  # deleted between the insert and this read
        raise ConflictError(
            ErrorCode.IDEMPOTENCY_CONFLICT, "clientId was used by a deleted message", "clientId"
        )
    if existing.get("request_hash") != request_hash(body):
        raise ConflictError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "clientId was already used with a different request body",
            "clientId",
        )
    return message_view(existing)


async def get_message(db: Database, reach: Reach, message_id: str, channel_id: str | None) -> MessageDoc:
    """The message, if it is in a channel ``reach`` covers (else 404, as for a missing one)."""
    query: Doc = {"_id": message_id, **reach.scope()}
    if channel_id:
        query["channel_id"] = channel_id
    doc = await collection(db, MESSAGES).find_one(query, MESSAGE_PROJECTION)
    if doc is None:
        raise NotFoundError("message")
    return doc


async def _newest_first(
    db: Database, query: Doc, limit: int, reader_id: str
) -> tuple[list[MessageView], str | None]:
    """One page of matching messages, newest first, as ``reader_id`` may read them, and the cursor
    for the next page."""
    docs = (
        await collection(db, MESSAGES).find(query, MESSAGE_PROJECTION).sort("_id", -1).limit(limit).to_list()
    )
    # As Placet: a full page always carries a cursor (the next page may then be empty).
    next_cursor = docs[limit - 1]["_id"] if len(docs) >= limit else None
    return [message_view_for(d, reader_id) for d in docs[:limit]], next_cursor


async def list_messages(
    db: Database,
    owner_id: str,
    channel_id: str,
    limit: int,
    cursor: str | None,
    search: str | None,
    correlation_id: str | None = None,
    *,
    reader_id: str,
    with_attachments: bool = False,
) -> tuple[list[MessageView], str | None]:
    """A page of ``owner_id``'s channel ``channel_id`` as ``reader_id`` (its owner or a member)
    may read it."""
    query: Doc = {"channel_id": channel_id, "owner_id": owner_id}
    if with_attachments:
        query["attachments.0"] = {"$exists": True}
    if cursor:
        query["_id"] = {"$lt": cursor}
    if search:
        query["text"] = {"$regex": re.escape(search), "$options": "i"}
    if correlation_id:
        query["correlation_id"] = correlation_id
    return await _newest_first(db, query, limit, reader_id)


ReviewSort = Literal["newest", "risk", "deadline"]
RISK_FILTERS: Final = (*policies.RISKS, "none")


@dataclass(frozen=True)
class ReviewQuery:
    """Which pending reviews a list shows, and in which order: ``risks`` (labels, or ``none``
    for unlabelled), review ``types``, one channel, created at least ``older_than`` seconds ago;
    ``newest`` first, most severe ``risk`` first (newest first within a label), or soonest
    ``deadline`` first."""

    channel_id: str | None = None
    risks: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    older_than: int | None = None
    sort: ReviewSort = "newest"


# A page's cursor under each sort: newest is the last id (as it always was); the others carry
# the sort key with it, so the next page starts exactly after the last review shown.
_CURSOR = {
    "risk": re.compile(r"^r([0-4])\.(msg_[0-9a-z]{26})$"),
    "deadline": re.compile(r"^d(\d{1,15})\.(msg_[0-9a-z]{26})$"),
}


def _bad_cursor(sort: str) -> InvalidError:
    return InvalidError(ErrorCode.INVALID_CURSOR, f"not a cursor of this list sorted by {sort}", "cursor")


def _after(query: ReviewQuery, cursor: str) -> Doc:
    """The condition for the reviews after ``cursor`` in ``query``'s order."""
    if query.sort == "newest":
        if not cursor.startswith("msg_"):
            raise _bad_cursor(query.sort)
        return {"_id": {"$lt": cursor}}
    found = _CURSOR[query.sort].match(cursor)
    if found is None:
        raise _bad_cursor(query.sort)
    last_id = found.group(2)
    if query.sort == "risk":
        rank = int(found.group(1))
        return {
            "$or": [{"review.risk_rank": {"$lt": rank}}, {"review.risk_rank": rank, "_id": {"$lt": last_id}}]
        }
    deadline = datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC)
    return {
        "$or": [
            {"review.expires_at": {"$gt": deadline}},
            {"review.expires_at": deadline, "_id": {"$gt": last_id}},
        ]
    }


def _cursor_of(query: ReviewQuery, doc: MessageDoc) -> str:
    if query.sort == "risk":
        return f"r{doc['review'].get('risk_rank', 0)}.{doc['_id']}"
    if query.sort == "deadline":
        millis = int(as_utc(doc["review"]["expires_at"]).timestamp() * 1000)
        return f"d{millis}.{doc['_id']}"
    return doc["_id"]


_SORTS: Final[dict[str, list[tuple[str, int]]]] = {
    "newest": [("_id", -1)],
    "risk": [("review.risk_rank", -1), ("_id", -1)],
    "deadline": [("review.expires_at", 1), ("_id", 1)],
}


async def list_reviews(
    db: Database,
    reach: Reach,
    channel_id: str | None,
    limit: int,
    cursor: str | None,
    reader_id: str | None = None,
    query: ReviewQuery = ReviewQuery(),
) -> tuple[list[MessageView], str | None]:
    """Pending reviews in the channels ``reach`` covers that still exist, filtered and sorted by
    ``query``: a review left in a deleted channel (stored before deletes closed them, or posted
    while one ran) is nobody's to answer and is never listed."""
    live = await membership.channel_ids(db, reach)
    for wanted in (channel_id, query.channel_id):
        if wanted:
            live = [wanted] if wanted in live else []
    conditions: list[Doc] = [reach.scope(), {"review.status": "pending", "channel_id": {"$in": live}}]
    if query.risks:
        ranks = sorted({policies.RISK_RANK.get(r, 0) for r in query.risks})
        conditions.append({"review.risk_rank": {"$in": ranks}})
    if query.types:
        conditions.append({"review.type": {"$in": list(query.types)}})
    if query.older_than is not None:
        before = int(utcnow().timestamp() * 1000) - query.older_than * 1000
        conditions.append({"_id": {"$lt": min_id("msg", before)}})
    if cursor:
        conditions.append(_after(query, cursor))
    docs = (
        await collection(db, MESSAGES)
        .find({"$and": conditions}, MESSAGE_PROJECTION)
        .sort(_SORTS[query.sort])
        .limit(limit)
        .to_list()
    )
    # As Placet: a full page always carries a cursor (the next page may then be empty).
    next_cursor = _cursor_of(query, docs[limit - 1]) if len(docs) >= limit else None
    return [message_view_for(d, reader_id or reach.owner_id) for d in docs[:limit]], next_cursor


async def acknowledge(db: Database, owner_id: str, message_id: str, channel_id: str | None) -> None:
    query: Doc = {"_id": message_id, "owner_id": owner_id}
    if channel_id:
        query["channel_id"] = channel_id
    now = utcnow()
    result = await collection(db, MESSAGES).update_one(
        query, {"$set": {"delivery_status": "agent_received", "acknowledged_at": now, "updated_at": now}}
    )
    if result.matched_count == 0:
        raise NotFoundError("message")


async def delete_message(db: Database, owner_id: str, message_id: str, channel_id: str | None) -> None:
    query: Doc = {"_id": message_id, "owner_id": owner_id}
    if channel_id:
        query["channel_id"] = channel_id
    messages = collection(db, MESSAGES)
    doc = await messages.find_one(query, {"group_id": 1})
    if doc is None:
        raise NotFoundError("message")
    # As Placet: a member of an iteration chain with other messages stays (agents walk chains).
    group_id = doc.get("group_id")
    if group_id and await messages.find_one({"group_id": group_id, "_id": {"$ne": message_id}}, {"_id": 1}):
        raise InvalidError(
            ErrorCode.ITERATION_CHAIN,
            "Cannot delete a message that is part of an iteration chain with other messages",
            "id",
        )
    # Its files first, bytes and all (their links stop working): a delete cut short between the
    # two is finished by asking again, where the other order would leave the files behind.
    await files.remove_files(db, {"owner_id": owner_id, "message_id": message_id})
    result = await messages.delete_one(query)
    if result.deleted_count == 0:
        raise NotFoundError("message")


async def delete_channel_messages(db: Database, owner_id: str, channel_id: str, keep_until: datetime) -> None:
    """Every message of a channel being deleted, and every file of the channel (attached or not).

    First its pending reviews are closed (``review_state.withdrawn``: expired, reason
    ``channel_deleted``, each with its ``review.expired`` event), then every event still waiting
    in the messages' outboxes is copied out (sayso_common.deleted_channels) to be published until
    ``keep_until``, and only then are the messages deleted. Each step is idempotent and the next
    one only starts when it is done, so a delete cut short anywhere is finished by asking again,
    and no review is closed or announced twice."""
    scope: Doc = {"owner_id": owner_id, "channel_id": channel_id}
    await _withdraw_pending(db, scope)
    holders = collection(db, MESSAGES).find({**scope, "outbox.0": {"$exists": True}}, {"outbox": 1})
    batch: list[MessageDoc] = []
    async for holder in holders:
        batch.append(holder)
        if len(batch) >= _CLOSING_BATCH:
            await keep_events(db, batch, channel_id, owner_id, keep_until)
            batch = []
    await keep_events(db, batch, channel_id, owner_id, keep_until)
    await files.remove_files(db, scope)
    # A review posted while this ran (a replica's channel cache still knew the channel) is left,
    # not deleted unheard: the inbox does not show it, and at its deadline the expirer closes it
    # and the agent gets its review:expired webhook like any other.
    await collection(db, MESSAGES).delete_many({**scope, "review.status": {"$ne": "pending"}})


# Reviews closed per write: building 100 events takes ~45 ms of this process's CPU (measured,
# 0.44 ms each), short enough not to hold up the requests it serves meanwhile.
_CLOSING_BATCH = 100


async def _withdraw_pending(db: Database, scope: Doc) -> None:
    messages = collection(db, MESSAGES)
    while True:
        due = (
            await messages.find({**scope, "review.status": "pending"}, MESSAGE_PROJECTION)
            .limit(_CLOSING_BATCH)
            .to_list()
        )
        if not due:
            return
        now = utcnow()
        await messages.bulk_write([review_state.withdrawn(d, now) for d in due], ordered=False)


async def keep_events(
    db: Database, holders: Sequence[Mapping[str, Any]], channel_id: str, owner_id: str, until: datetime
) -> None:
    """Copy the events waiting in ``holders``' outboxes to ``deleted_channel_events`` (each once)."""
    left = deleted_channels.left_events(holders, channel_id, owner_id, until)
    if left:
        await insert_new(collection(db, LEFT_EVENTS), left)
