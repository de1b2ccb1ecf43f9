"""A review's ways to close, the one home of each: answered (``completed``, written by the API),
decided by a quorum of votes (``voted``, the API), expired (written by the expirer) and withdrawn
with its deleted channel (``withdrawn``, the API; an expiry with a reason). Each is a
single conditional update on ``review.status: pending`` that also appends the event to the
message's outbox, so a response racing the deadline either lands first (and the expiry matches
nothing) or loses (and gets 409), never both, and there is exactly one ``review.responded`` or
``review.expired`` event per review."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from sayso_common import quorum, reviews
from sayso_common.documents import (
    DecidedByDoc,
    ExpiryReason,
    MessageDoc,
    RememberedDecisionDoc,
    ReviewDoc,
    VoteDoc,
)
from sayso_common.events import (
    Event,
    MessageCreated,
    MessageData,
    ReviewExpired,
    ReviewResponded,
    ReviewVoted,
    VoteData,
    event_to_document,
    outbox_entry,
)
from sayso_common.views import MessageView, message_view, vote_view


def content_digest(doc: MessageDoc) -> str:
    """sha256 (hex) of what a reviewer is shown: the text, metadata, attached files, review type
    and payload. Written once when the message is created; none of these can change afterwards
    (a reviewed stream's text is fixed), so an answer is recorded against exactly this."""
    review = doc.get("review")
    shown = {
        "text": doc.get("text"),
        "metadata": doc.get("metadata"),
        "attachments": [a["id"] for a in doc.get("attachments") or ()],
        "type": review["type"] if review else None,
        "payload": review.get("payload") if review else None,
    }
    canonical = json.dumps(shown, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What a response records on the review: a human's (``responded_by``, their user id) or a
    policy rule's or a remembered approval's (``decided_by``, and no ``responded_by``)."""

    response: Any
    responded_by: str | None
    feedback: str | None = None
    modified_file_ids: dict[str, str] | None = None
    decided_by: DecidedByDoc | RememberedDecisionDoc | None = None


@dataclass(frozen=True)
class Guard:
    """What a conditional update that answers or votes on a review requires: the message of
    ``owner_id``, its review still open at ``at`` (pending and before its deadline); for a vote
    also that ``voter_id`` has not voted and exactly ``votes`` votes are in (none landed since
    the read). :attr:`query` says it to MongoDB, :meth:`holds` to a document in memory; the
    review store contract test runs both over the same cases."""

    message_id: str
    owner_id: str
    at: datetime
    voter_id: str | None = None
    votes: int | None = None

    @property
    def query(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "_id": self.message_id,
            "owner_id": self.owner_id,
            **reviews.open_query(self.at),
        }
        if self.voter_id is not None:
            found["review.votes.user_id"] = {"$ne": self.voter_id}
        if self.votes is not None:
            found["review.votes"] = {"$size": self.votes}
        return found

    def holds(self, doc: MessageDoc) -> bool:
        review = doc.get("review")
        if doc["_id"] != self.message_id or doc["owner_id"] != self.owner_id or review is None:
            return False
        if not reviews.is_open(review, self.at):
            return False
        votes = review.get("votes")
        if self.voter_id is not None and any(v["user_id"] == self.voter_id for v in votes or ()):
            return False
        # ``$size`` matches only an array: a review without ``votes`` takes no vote.
        return self.votes is None or (isinstance(votes, list) and len(votes) == self.votes)


@dataclass(frozen=True)
class Completion:
    """The conditional update that answers a review, and the message as it then reads."""

    guard: Guard
    update: dict[str, Any]
    view: MessageView

    @property
    def filter(self) -> dict[str, Any]:
        return self.guard.query


def _answered(
    doc: MessageDoc, answer: Answer, now: datetime
) -> tuple[dict[str, Any], ReviewResponded, MessageDoc]:
    """The ``$set`` that completes the review of ``doc`` with ``answer``, its event, and the
    message as it then reads."""
    fields, answered = _outcome(doc, answer, now)
    return fields, _responded(answered, now), answered


def _outcome(doc: MessageDoc, answer: Answer, now: datetime) -> tuple[dict[str, Any], MessageDoc]:
    review = doc["review"]
    outcome: dict[str, Any] = {"status": "completed", "response": answer.response}
    if answer.responded_by is not None:
        outcome["responded_by"] = answer.responded_by
    if answer.decided_by is not None:
        outcome["decided_by"] = answer.decided_by
    outcome |= {"responded_at": now, "completed_at": now}
    if answer.feedback is not None:
        outcome["feedback"] = answer.feedback
    if answer.modified_file_ids is not None:
        outcome["modified_file_ids"] = answer.modified_file_ids
    answered_review: ReviewDoc = {**review, **outcome}  # type: ignore[typeddict-item]
    answered: MessageDoc = {**doc, "delivery_status": "sent", "updated_at": now, "review": answered_review}
    fields = {**{f"review.{k}": v for k, v in outcome.items()}, "delivery_status": "sent", "updated_at": now}
    return fields, answered


def _responded(answered: MessageDoc, now: datetime) -> ReviewResponded:
    return ReviewResponded(
        channel_id=answered["channel_id"],
        owner_id=answered["owner_id"],
        occurred_at=now,
        data=MessageData(message=message_view(answered)),
    )


def _still_open(doc: MessageDoc, now: datetime) -> Guard:
    return Guard(doc["_id"], doc["owner_id"], now)


def completed(doc: MessageDoc, answer: Answer, now: datetime) -> Completion:
    """Answer the pending review of ``doc``."""
    fields, event, _ = _answered(doc, answer, now)
    return Completion(
        guard=_still_open(doc, now),
        update={"$set": fields, "$push": {"outbox": outbox_entry(event)}},
        view=event.data.message,
    )


def completed_on_arrival(doc: MessageDoc, answer: Answer, now: datetime) -> MessageDoc:
    """``doc``, a new message not stored yet (its review pending, its outbox not filled), as it
    is stored when a policy answers its review on arrival: the review completed with ``answer``
    exactly as :func:`completed` records a human's, and the outbox holding ``message.created``
    then ``review.responded``, both showing the answered review. One insert writes it all, so no
    reader (the inbox, a long-poll, the notifier) ever sees the review pending, and a crash
    cannot leave it half answered."""
    _, answered = _outcome(doc, answer, now)
    view = message_view(answered)
    # Both show the answered review, so a reader that gets them in either order (a resume reads
    # by event id) sees the same message; the relay publishes them in this order.
    created = MessageCreated(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=now,
        data=MessageData(message=view),
    )
    responded = _responded(answered, now)
    return {**answered, "outbox": [outbox_entry(created), outbox_entry(responded)]}


@dataclass(frozen=True)
class Vote:
    """One reviewer's answer to a quorum review (already validated against the review)."""

    user_id: str
    email: str
    response: Any


@dataclass(frozen=True)
class Ballot:
    """The conditional update that records a vote (and, if it decides the quorum, completes the
    review), the message as it then reads, and the outcome the vote decided (None: still open)."""

    guard: Guard
    update: dict[str, Any]
    view: MessageView
    outcome: quorum.Outcome | None

    @property
    def filter(self) -> dict[str, Any]:
        return self.guard.query


def voted(doc: MessageDoc, vote: Vote, reviewers: frozenset[str], now: datetime) -> Ballot:
    """Record ``vote`` on the pending quorum review of ``doc``, as read, with ``reviewers`` the
    user ids that may vote now.

    The update applies only if the review is still pending, this reviewer has not voted, and no
    other vote landed since ``doc`` was read (the number of votes is unchanged): the outcome is
    decided here, from exactly the votes the update extends. A concurrent voter's update then
    matches nothing and is rebuilt from a fresh read, so among racing votes exactly one can be
    the deciding one, and the review gets one ``review.responded`` event."""
    review = doc["review"]
    payload = review.get("payload") or {}
    before = review.get("votes", [])
    cast: VoteDoc = {"user_id": vote.user_id, "email": vote.email, "response": vote.response, "at": now}
    votes = [*before, cast]
    decided = quorum.outcome(review["quorum"]["approvals"], payload, votes, reviewers)
    counted: MessageDoc = {**doc, "updated_at": now, "review": {**review, "votes": votes}}
    fields: dict[str, Any] = {"updated_at": now}
    closing: list[Event] = []
    view = message_view(counted)
    if decided is not None:
        agrees = (decided == "approved") == quorum.approves(payload, vote.response)
        final = vote.response if agrees else {"selectedOption": quorum.rejecting_option(payload)}
        answered, responded, _ = _answered(counted, Answer(final, vote.user_id), now)
        fields |= answered
        closing.append(responded)
        view = responded.data.message
    event = ReviewVoted(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=now,
        data=VoteData(message=view, vote=vote_view(cast)),
    )
    return Ballot(
        guard=Guard(doc["_id"], doc["owner_id"], now, voter_id=vote.user_id, votes=len(before)),
        update={
            "$set": fields,
            "$push": {
                "review.votes": cast,
                "outbox": {"$each": [outbox_entry(e) for e in [event, *closing]]},
            },
        },
        view=view,
        outcome=decided,
    )


def _expiry(
    doc: MessageDoc, now: datetime, reason: ExpiryReason | None
) -> tuple[dict[str, Any], ReviewExpired]:
    """The ``$set`` that expires the review of ``doc``, and its event."""
    review = doc["review"]
    closed: ReviewDoc = {**review, "status": "expired", "expired_at": now}
    fields: dict[str, Any] = {"review.status": "expired", "review.expired_at": now, "updated_at": now}
    if reason is not None:
        closed["expired_reason"] = fields["review.expired_reason"] = reason
    elif "on_expire" in review:
        closed["default_response"] = fields["review.default_response"] = review["on_expire"]["response"]
    view = message_view({**doc, "updated_at": now, "review": closed})
    event = ReviewExpired(
        channel_id=doc["channel_id"],
        owner_id=doc["owner_id"],
        occurred_at=now,
        data=MessageData(message=view),
    )
    return fields, event


def expired(doc: MessageDoc, now: datetime) -> UpdateOne:
    """Expire the pending review of ``doc`` (a no-op if it was answered meanwhile). A review
    created with ``onExpire`` stays ``expired`` (as in Placet) and carries its default answer as
    ``default_response``."""
    fields, event = _expiry(doc, now, None)
    return UpdateOne(
        {"_id": doc["_id"], "review.status": "pending"},
        {"$set": fields, "$push": {"outbox": event_to_document(event)}},
    )


def withdrawn(doc: MessageDoc, now: datetime) -> UpdateOne:
    """Close the pending review of ``doc`` because its channel is being deleted: ``expired``, as
    the deadline would (the same ``review.expired`` event, webhook and long-poll answer: Placet's
    statuses have no other word for it), with ``expired_reason: "channel_deleted"``. Its
    ``onExpire`` default does not apply: nobody let the deadline pass, and an agent must not read
    an approval nobody gave. A no-op if the review was answered or expired meanwhile."""
    fields, event = _expiry(doc, now, "channel_deleted")
    return UpdateOne(
        {"_id": doc["_id"], "review.status": "pending"},
        {"$set": fields, "$push": {"outbox": event_to_document(event)}},
    )
