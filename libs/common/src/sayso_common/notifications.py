"""Notification documents (:class:`NotificationDoc`): one per review x recipient x kind (e-mail,
Slack) x purpose (the review arrived, a reminder, an escalation step, the Slack message updated
with the outcome). The one home of every change to them, used by the notifier (planning, claims,
attempts, cancelling) and the API (an answer link used, a Slack message to update).

Like a delivery, a pending notification is due when ``next_attempt_at`` has passed; claiming it
pushes ``next_attempt_at`` to the end of the lease and stamps a ``claim``, so one index finds
scheduled reminders, retries and the work of a notifier that died mid-send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sayso_common.documents import (
    NotificationAttemptDoc,
    NotificationDoc,
    NotificationKind,
    NotificationState,
    RecipientKind,
)
from sayso_common.ids import new_id

REVIEW = "review"
OUTCOME = "outcome"
# Purposes a closed review no longer needs: everything but the outcome update.
CANCELLED_BY_CLOSE = {"$ne": OUTCOME}

Result = Literal["sent", "retry", "failed"]


def reminder(index: int) -> str:
    return f"reminder:{index}"


ESCALATION = "escalation:"


def escalation(index: int) -> str:
    return f"{ESCALATION}{index}"


OPERATOR = "operator:"


def operator(event_type: str) -> str:
    """The purpose of an operator notice: ``operator.endpoint_disabled`` -> ``operator:endpoint_disabled``."""
    return OPERATOR + event_type.removeprefix("operator.")


def notification_key(message_id: str, recipient_id: str, kind: NotificationKind, purpose: str) -> str:
    """What the unique index holds: an event seen twice plans the same keys and adds nothing."""
    return f"{message_id}|{recipient_id}|{kind}|{purpose}"


def new_notification(
    *,
    message_id: str,
    channel_id: str,
    owner_id: str,
    kind: NotificationKind,
    purpose: str,
    recipient_kind: RecipientKind,
    recipient_id: str,
    responder_id: str | None,
    now: datetime,
    due_at: datetime,
    address: str | None = None,
    claim: str | None = None,
    state: NotificationState = "pending",
    error: str | None = None,
    response_url_enc: str | None = None,
) -> NotificationDoc:
    """A notification, pending (due at ``due_at``, held by ``claim`` if given) or, with ``state``
    skipped and an ``error``, recorded as not sendable."""
    doc: NotificationDoc = {
        "_id": new_id("ntf"),
        "key": notification_key(message_id, recipient_id, kind, purpose),
        "message_id": message_id,
        "channel_id": channel_id,
        "owner_id": owner_id,
        "kind": kind,
        "purpose": purpose,
        "recipient_kind": recipient_kind,
        "recipient_id": recipient_id,
        "responder_id": responder_id,
        "address": address,
        "escalation": purpose.startswith("escalation:"),
        "state": state,
        "attempt_count": 0,
        "attempts": [],
        "claim": claim,
        "last_error": error,
        "created_at": now,
        "updated_at": now,
    }
    if state == "pending":
        doc["next_attempt_at"] = due_at
    else:
        doc["finished_at"] = now
    if response_url_enc is not None:
        doc["response_url_enc"] = response_url_enc
    return doc


def outcome_of(source: NotificationDoc, now: datetime, response_url_enc: str | None) -> NotificationDoc:
    """The update of a Slack message once its review is closed: through the ``response_url`` a
    button click gave (the message is replaced), else as a follow-up to the same webhook."""
    return new_notification(
        message_id=source["message_id"],
        channel_id=source["channel_id"],
        owner_id=source["owner_id"],
        kind="slack",
        purpose=OUTCOME,
        recipient_kind=source["recipient_kind"],
        recipient_id=source["recipient_id"],
        responder_id=source.get("responder_id"),
        now=now,
        due_at=now,
        response_url_enc=response_url_enc,
    )


@dataclass(frozen=True)
class NotificationAttempt:
    at: datetime
    duration_ms: float
    error_kind: str | None
    error: str | None
    by: str

    def document(self) -> NotificationAttemptDoc:
        return {
            "at": self.at,
            "duration_ms": round(self.duration_ms, 2),
            "error_kind": self.error_kind,
            "error": self.error,
            "by": self.by,
        }


def recorded(
    doc: NotificationDoc,
    attempt: NotificationAttempt,
    result: Result,
    retry_delay: float | None,
    now: datetime,
    attempts_kept: int,
) -> tuple[dict[str, Any], NotificationState, datetime | None]:
    """(update, new state, next attempt) for one finished attempt; a retry with no delay left
    fails."""
    fields: dict[str, Any] = {
        "attempt_count": doc.get("attempt_count", 0) + 1,
        "last_error": attempt.error,
        "updated_at": now,
        "claim": None,
    }
    state: NotificationState
    next_at: datetime | None = None
    if result == "sent":
        state = "sent"
        fields |= {"state": state, "sent_at": now, "finished_at": now}
    elif result == "retry" and retry_delay is not None:
        state = "pending"
        next_at = now + timedelta(seconds=retry_delay)
        fields |= {"state": state, "next_attempt_at": next_at}
    else:
        state = "failed"
        fields |= {"state": state, "finished_at": now}
    update: dict[str, Any] = {
        "$set": fields,
        "$push": {"attempts": {"$each": [attempt.document()], "$slice": -attempts_kept}},
    }
    if next_at is None:
        update["$unset"] = {"next_attempt_at": ""}
    return update, state, next_at


def closed(
    doc: NotificationDoc, state: Literal["cancelled", "skipped"], reason: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) ending a claimed notification without an attempt: its review closed, or
    its recipient turned this kind off."""
    return (
        {"_id": doc["_id"], "claim": doc.get("claim")},
        {
            "$set": {
                "state": state,
                "last_error": reason,
                "claim": None,
                "finished_at": now,
                "updated_at": now,
            },
            "$unset": {"next_attempt_at": ""},
        },
    )


def deferred(doc: NotificationDoc, until: datetime, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) holding a claimed notification back until ``until`` (quiet hours)."""
    return (
        {"_id": doc["_id"], "claim": doc.get("claim")},
        {"$set": {"claim": None, "next_attempt_at": until, "deferred_until": until, "updated_at": now}},
    )


def cancel_for_closed_review(message_id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) cancelling what a closed review no longer needs: reminders, escalations and
    notices not sent yet. Claimed ones are left to their holder, which finds the review closed."""
    return (
        {"message_id": message_id, "state": "pending", "claim": None, "purpose": CANCELLED_BY_CLOSE},
        {
            "$set": {
                "state": "cancelled",
                "last_error": "the review was closed first",
                "finished_at": now,
                "updated_at": now,
            },
            "$unset": {"next_attempt_at": ""},
        },
    )


NO_LONGER_A_REVIEWER = "the recipient is no longer a reviewer of this channel"


def cancel_for_removed_reviewer(
    channel_id: str, user_id: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) cancelling what still waits for a user removed from a channel: notices
    held by quiet hours, reminders, escalations, retries. Claimed ones are left to their holder,
    which finds the recipient no longer among the channel's reviewers."""
    return (
        {
            "channel_id": channel_id,
            "recipient_kind": "user",
            "recipient_id": user_id,
            "state": "pending",
            "claim": None,
        },
        {
            "$set": {
                "state": "cancelled",
                "last_error": NO_LONGER_A_REVIEWER,
                "finished_at": now,
                "updated_at": now,
            },
            "$unset": {"next_attempt_at": ""},
        },
    )


def links_revoked(channel_id: str, user_id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) withdrawing every answer link and Slack button a channel's notices gave
    ``user_id`` (removed from it): they stay dead if the user is added back later."""
    return (
        {"channel_id": channel_id, "responder_id": user_id, "link_revoked_at": {"$exists": False}},
        {"$set": {"link_revoked_at": now, "updated_at": now}},
    )


def link_used(notification_id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) marking a notification's answer links used; matches nothing if one of
    them was used before, which is what makes a link (and a replayed Slack click) single-use."""
    return (
        {"_id": notification_id, "link_used_at": {"$exists": False}},
        {"$set": {"link_used_at": now, "updated_at": now}},
    )


def link_released(notification_id: str, used_at: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) giving a link back when the answer it carried could not be recorded (the
    database failed): only an outcome the review actually got uses a link up."""
    return (
        {"_id": notification_id, "link_used_at": used_at},
        {"$unset": {"link_used_at": ""}},
    )
