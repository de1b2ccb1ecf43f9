"""The audit log: one append-only entry per decision (a person's answer, a policy's, each quorum
vote, an expiry and the default it put in force) and per policy change.

Decisions are not written a second time by the code that makes them: each already writes its
event into the message's outbox in the same single-document write as the state change
(:mod:`sayso_common.review_state`), and the outbox relay stores every event it published. The
relay derives the audit entries from those same events (:func:`entries_for`) and stores them
before it pulls the events from the outbox, keyed by event id: a crash in between only repeats
an insert that then stores nothing, so each decision is recorded exactly once and none is lost.
Policy changes are not events; the entry is written in the transaction that saves the version
(:func:`policy_changed`). An escalation step is a notification the notifier sends; it stores the
entry (:func:`escalated`, keyed by the notification) before it records the notification sent, so
a notifier that dies in between sends it again and stores nothing new.

Entries expire after the API's ``SAYSO_AUDIT_RETENTION_DAYS`` through a TTL index on ``at``
(:func:`ensure_retention`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from pydantic.alias_generators import to_camel
from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure

from sayso_common.clock import as_utc
from sayso_common.documents import AuditActorDoc, AuditDoc, AuditKind, NotificationDoc
from sayso_common.events import Event, MessageCreated, ReviewExpired, ReviewResponded, ReviewVoted
from sayso_common.mongo import AUDIT, Database, collection, insert_new
from sayso_common.notifications import ESCALATION
from sayso_common.views import REDACTED, MessageView, password_fields

log = logging.getLogger(__name__)

RETENTION_INDEX: Final = "audit_retention"
# Event types another part of the code emits for remembered approvals (issue #29 item 4):
# ``data`` is {channelId, rememberedId, tool, argsDigest, scope, runId, expiresAt, actor}, the
# actor a user id or ``key:<API key id>`` (:func:`actor_of`).
_REMEMBERED: Final[dict[str, AuditKind]] = {
    "approval.remembered": "approval_remembered",
    "approval.revoked": "approval_revoked",
}


def decision_of(review_type: str, response: Any) -> str | None:
    """The outcome an entry records, the value the ``decision`` filter matches: the chosen
    option of an approval (``dismissed`` for a dismissal), the chosen ids of a selection (sorted,
    comma-separated), ``responded`` for a form, a text or a freeform answer."""
    if not isinstance(response, Mapping):
        return None
    if response.get("_dismissed") is True:
        return "dismissed"
    if review_type == "approval":
        option = response.get("selectedOption")
        return option if isinstance(option, str) else None
    if review_type == "selection":
        ids = response.get("selectedIds")
        if isinstance(ids, list):
            return ",".join(sorted(str(i) for i in ids))
        return None
    return "responded"


def _shown(review_type: str, payload: Mapping[str, Any], response: Any) -> Any:
    """``response`` as the audit keeps it: a form's password answers never enter the log."""
    if review_type != "form" or not isinstance(response, Mapping):
        return response
    hidden = [name for name in password_fields(dict(payload)) if response.get(name)]
    return {**response, **dict.fromkeys(hidden, REDACTED)} if hidden else dict(response)


def _entry(
    event: Event,
    message: MessageView,
    kind: AuditKind,
    actor: AuditActorDoc,
    decision: str | None,
    detail: dict[str, Any],
    rule: int | None = None,
    version: int | None = None,
) -> AuditDoc:
    return {
        "_id": event.id,
        "at": as_utc(event.occurred_at),
        "owner_id": event.owner_id,
        "channel_id": event.channel_id,
        "message_id": message.id,
        "kind": kind,
        "actor": actor,
        "decision": decision,
        "rule": rule,
        "policy_version": version,
        "detail": detail,
    }


def _answer(event: ReviewResponded) -> AuditDoc | None:
    message = event.data.message
    review = message.review
    if review is None:
        return None
    response = _shown(review.type, review.payload, review.response)
    detail: dict[str, Any] = {"reviewType": review.type, "response": response}
    if review.feedback is not None:
        detail["feedback"] = review.feedback
    decision = decision_of(review.type, review.response)
    if review.decided_by is not None and review.decided_by.remembered is not None:
        # A remembered approval answered: the person whose answer it remembers granted it.
        by = review.decided_by
        detail.update(rememberedId=by.remembered, grantedBy=by.granted_by, grantedOnReview=by.review)
        granter = actor_of(by.granted_by)
        return _entry(event, message, "auto_decided", granter, decision, detail)
    if review.decided_by is not None:
        by = review.decided_by
        detail["policyId"] = by.policy
        actor: AuditActorDoc = {"type": "policy", "id": by.policy}
        return _entry(event, message, "auto_decided", actor, decision, detail, by.rule, by.version)
    actor = {"type": "user", "id": review.responded_by}
    if review.quorum is not None:
        # The deciding vote has its own ``voted`` entry; this one is the review's outcome.
        detail["quorum"] = {"approvals": review.quorum.approvals, "approved": review.quorum.approved}
        return _entry(event, message, "quorum_decided", actor, decision, detail)
    return _entry(event, message, "answered", actor, decision, detail)


def _vote(event: ReviewVoted) -> AuditDoc | None:
    message = event.data.message
    review = message.review
    if review is None:
        return None
    vote = event.data.vote
    detail = {"reviewType": review.type, "response": _shown(review.type, review.payload, vote.response)}
    actor: AuditActorDoc = {"type": "user", "id": vote.user_id}
    return _entry(event, message, "voted", actor, decision_of(review.type, vote.response), detail)


def _expiry(event: ReviewExpired) -> AuditDoc | None:
    message = event.data.message
    review = message.review
    if review is None:
        return None
    system: AuditActorDoc = {"type": "system", "id": None}
    detail: dict[str, Any] = {"reviewType": review.type, "expiresAt": review.expires_at}
    if review.expired_reason is not None:
        detail["reason"] = review.expired_reason
        return _entry(event, message, "withdrawn", system, None, detail)
    if review.default_response is not None:
        detail["response"] = _shown(review.type, review.payload, review.default_response)
        decision = decision_of(review.type, review.default_response)
        return _entry(event, message, "expired_default", system, decision, detail)
    return _entry(event, message, "expired", system, None, detail)


def _fallback(event: MessageCreated) -> AuditDoc | None:
    """A matching rule that could not answer a new review: the audit says which and why."""
    message = event.data.message
    review = message.review
    if review is None or review.policy_fallback is None:
        return None
    why = review.policy_fallback
    actor: AuditActorDoc = {"type": "policy", "id": why.policy}
    detail = {"reviewType": review.type, "policyId": why.policy, "reason": why.reason}
    return _entry(event, message, "policy_fallback", actor, None, detail, why.rule, why.version)


def actor_of(who: str | None) -> AuditActorDoc:
    """The actor of an id as the API records who acted: a user id, ``key:<API key id>`` for an
    API key (an agent), nothing for the system."""
    if not who:
        return {"type": "system", "id": None}
    if who.startswith("key:"):
        return {"type": "agent", "id": who.removeprefix("key:")}
    return {"type": "user", "id": who}


def _remembered(event: Event, kind: AuditKind) -> AuditDoc:
    # The event's data is snake_case (as on the broker); the audit's detail is camelCase like
    # every other entry's.
    raw: dict[str, Any] = event.data.model_dump(mode="python")
    who = raw.pop("actor", None)
    actor = actor_of(who if isinstance(who, str) else None)
    data = {to_camel(key): value for key, value in raw.items()}
    return {
        "_id": event.id,
        "at": as_utc(event.occurred_at),
        "owner_id": event.owner_id,
        "channel_id": event.channel_id,
        "message_id": None,
        "kind": kind,
        "actor": actor,
        "decision": None,
        "rule": None,
        "policy_version": None,
        "detail": data,
    }


def entry_for(event: Event) -> AuditDoc | None:
    """The audit entry ``event`` records, or None for an event that records no decision."""
    # By the type's name, not isinstance: pydantic's metaclass makes each isinstance check cost
    # about a microsecond, and the relay asks this of every event it publishes.
    if event.type == "message.created":
        return _fallback(event)
    if event.type == "review.responded":
        return _answer(event)
    if event.type == "review.voted":
        return _vote(event)
    if event.type == "review.expired":
        return _expiry(event)
    kind = _REMEMBERED.get(str(event.type))
    return _remembered(event, kind) if kind is not None else None


def entries_for(events: Iterable[Event]) -> list[AuditDoc]:
    return [entry for entry in map(entry_for, events) if entry is not None]


async def record(db: Database, events: Iterable[Event]) -> int:
    """Store the entries of ``events`` not stored yet (a republished event stores nothing);
    returns how many were new."""
    return len(await insert_new(collection(db, AUDIT), entries_for(events)))


def policy_changed(
    *,
    policy_id: str,
    version: int,
    owner_id: str,
    channel_id: str | None,
    actor: str,
    at: datetime,
    rule_count: int,
) -> AuditDoc:
    """The entry of a saved policy version; ``actor`` is a user id or ``key:<API key id>``."""
    who = actor_of(actor)
    return {
        "_id": f"policy:{policy_id}:{version}",
        "at": as_utc(at),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "message_id": None,
        "kind": "policy_changed",
        "actor": who,
        "decision": None,
        "rule": None,
        "policy_version": version,
        "detail": {
            "policyId": policy_id,
            "scope": "account" if channel_id is None else "channel",
            "ruleCount": rule_count,
        },
    }


def escalated(notification: NotificationDoc, at: datetime) -> AuditDoc:
    """The entry of an escalation step sent: which step, to whom, by which means."""
    step = notification["purpose"].removeprefix(ESCALATION)
    return {
        "_id": f"escalation:{notification['_id']}",
        "at": as_utc(at),
        "owner_id": notification["owner_id"],
        "channel_id": notification["channel_id"],
        "message_id": notification["message_id"],
        "kind": "escalated",
        "actor": {"type": "system", "id": None},
        "decision": None,
        "rule": None,
        "policy_version": None,
        "detail": {
            "step": int(step) if step.isdigit() else step,
            "via": notification["kind"],
            "recipientKind": notification["recipient_kind"],
            "recipient": notification["recipient_id"],
        },
    }


async def ensure_retention(db: Database, days: int) -> None:
    """The TTL index that removes entries ``days`` after they were made (0: kept for ever). An
    index made with another value is changed in place (``collMod``), not rebuilt."""
    audit = collection(db, AUDIT)
    existing = {ix["name"]: ix async for ix in await audit.list_indexes()}
    current = existing.get(RETENTION_INDEX)
    if days <= 0:
        if current is not None:
            await audit.drop_index(RETENTION_INDEX)
        return
    seconds = days * 24 * 3600
    if current is None:
        try:
            await audit.create_indexes(
                [IndexModel([("at", ASCENDING)], name=RETENTION_INDEX, expireAfterSeconds=seconds)]
            )
        except OperationFailure as exc:  # a replica starting at the same time made it
            if exc.code not in (85, 86):
                raise
            await ensure_retention(db, days)
        return
    if current.get("expireAfterSeconds") != seconds:
        log.info("audit retention changed to %s days", days)
        await db.command(
            {"collMod": AUDIT, "index": {"name": RETENTION_INDEX, "expireAfterSeconds": seconds}}
        )
