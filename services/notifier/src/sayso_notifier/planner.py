"""Who is told what, and when, about a new review: pure functions from the stored documents to
notification documents (table tests in tests/notifier/test_units.py).

Recipients are the channel's owner and its members (a shared channel's reviewers); each by
the kinds their preferences allow (e-mail unless turned off, Slack if they set a webhook), plus
the channel's own Slack webhook. A review a policy's ask rule gave ``notify`` tells only those of
its reviewers (everyone, if none of them is a reviewer any more: a review is never announced to
nobody); the channel's own Slack webhook is not a person and still gets it. The same people are reminded at each ``review.reminders``
offset; each ``review.escalation`` step tells the channel's reviewers it names (the API refuses
any other address; one whose reviewer was removed since is recorded as skipped, never looked up
as an account). Everything is planned at once, with its due time, so a notifier that restarts
finds the schedule in MongoDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sayso_common import membership, notifications
from sayso_common.clock import as_utc
from sayso_common.documents import AgentDoc, MessageDoc, NotificationDoc, UserDoc
from sayso_common.events import OperatorEvent

# Said where the owner reads it (the Notifications page, the notification log): a notice skipped
# for this stays skipped once e-mail is set up, because a late e-mail about an old review would
# arrive out of order with what happened since; the review itself waits in the inbox.
EMAIL_NOT_CONFIGURED = (
    "e-mail was not configured on this installation when this review arrived (SAYSO_SMTP_URL); "
    "it is not sent later, answer the review in the inbox"
)
NOT_A_REVIEWER = "not the owner or a member of this channel: escalations only go to its reviewers"


def recipients(agent: AgentDoc, notify: list[str] | None = None) -> list[str]:
    """The people who answer the channel's reviews (``membership.reviewers``), owner first; with
    ``notify`` (an ask rule's), those of them it names, unless it names none of them."""
    others = membership.reviewers(agent) - {agent["owner_id"]}
    people = [agent["owner_id"], *sorted(others)]
    chosen = [user_id for user_id in people if user_id in (notify or ())]
    return chosen or people


def _for_user(
    message: MessageDoc, user: UserDoc, purpose: str, due: datetime, now: datetime, email_ready: bool
) -> list[NotificationDoc]:
    prefs = user.get("notifications") or {}
    common: dict[str, Any] = {
        "message_id": message["_id"],
        "channel_id": message["channel_id"],
        "owner_id": message["owner_id"],
        "purpose": purpose,
        "recipient_kind": "user",
        "recipient_id": user["_id"],
        "responder_id": user["_id"],
        "now": now,
        "due_at": due,
    }
    docs: list[NotificationDoc] = []
    if prefs.get("email", True):
        if email_ready:
            docs.append(notifications.new_notification(kind="email", address=user["email"], **common))
        else:
            docs.append(
                notifications.new_notification(
                    kind="email", address=user["email"], state="skipped", error=EMAIL_NOT_CONFIGURED, **common
                )
            )
    if prefs.get("slack_webhook_enc"):
        docs.append(notifications.new_notification(kind="slack", **common))
    return docs


def plan(
    message: MessageDoc,
    agent: AgentDoc,
    users: Mapping[str, UserDoc],
    now: datetime,
    email_ready: bool,
) -> list[NotificationDoc]:
    """Every notification a new review calls for. ``users`` holds the channel's people by id;
    an escalation address that is none of theirs is recorded as skipped, the same way whether or
    not some account has it."""
    review = message.get("review")
    if not review or review["status"] != "pending" or "expires_at" not in review:
        return []
    expires = as_utc(review["expires_at"])
    if expires <= now:
        return []
    created = as_utc(message["created_at"])
    # A reminder whose time has already passed is dropped: the first notice covers it.
    rounds = [(notifications.REVIEW, now)] + [
        (notifications.reminder(i), expires - timedelta(seconds=s))
        for i, s in enumerate(review.get("reminders") or [])
        if now < expires - timedelta(seconds=s)
    ]
    docs: list[NotificationDoc] = []
    people = recipients(agent, review.get("notify"))
    for purpose, due in rounds:
        for user_id in people:
            user = users.get(user_id)
            if user is not None:
                docs += _for_user(message, user, purpose, due, now, email_ready)
        if agent.get("slack_webhook_enc"):
            docs.append(
                notifications.new_notification(
                    message_id=message["_id"],
                    channel_id=message["channel_id"],
                    owner_id=message["owner_id"],
                    kind="slack",
                    purpose=purpose,
                    recipient_kind="channel",
                    recipient_id=message["channel_id"],
                    responder_id=agent["owner_id"],
                    now=now,
                    due_at=due,
                )
            )
    by_email = membership.reviewers_by_email(agent, users)
    for i, step in enumerate(review.get("escalation") or []):
        due = max(now, created + timedelta(seconds=step["after_seconds"]))
        if due >= expires:
            continue
        purpose = notifications.escalation(i)
        for email in step["notify"]:
            reviewer = by_email.get(email)
            if reviewer is not None:
                docs += _for_user(message, users[reviewer], purpose, due, now, email_ready)
            else:
                docs.append(
                    notifications.new_notification(
                        message_id=message["_id"],
                        channel_id=message["channel_id"],
                        owner_id=message["owner_id"],
                        kind="email",
                        purpose=purpose,
                        recipient_kind="address",
                        recipient_id=email,
                        responder_id=None,
                        address=email,
                        now=now,
                        due_at=due,
                        state="skipped",
                        error=NOT_A_REVIEWER,
                    )
                )
    return docs


def operator_notices(event: OperatorEvent, owner: UserDoc | None, now: datetime) -> list[NotificationDoc]:
    """The e-mail an operator event calls for: one to the owner, keyed by the incident (a
    redelivered event adds nothing), unless they turned operator e-mails off. Sent whether or
    not e-mail is configured is decided at send time, like any e-mail."""
    if owner is None or (owner.get("notifications") or {}).get("operator_emails") is False:
        return []
    incident = event.data
    doc = notifications.new_notification(
        message_id=incident.incident_id,
        channel_id=event.channel_id,
        owner_id=event.owner_id,
        kind="email",
        purpose=notifications.operator(event.type),
        recipient_kind="user",
        recipient_id=owner["_id"],
        responder_id=None,
        address=owner["email"],
        now=now,
        due_at=now,
    )
    doc["incident"] = {
        "type": event.type,
        "endpoint_id": incident.endpoint_id,
        "url": incident.url,
        "reason": incident.reason,
        "since": incident.since,
    }
    return [doc]
