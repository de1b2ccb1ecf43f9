"""Who hears about reviews, and how: a user's notification preferences, a channel's own Slack
webhook, and the notification log the operator page shows. Slack webhook URLs are credentials
(anyone holding one posts into the channel): stored sealed, shown as their host only."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from sayso_api.schemas import Out, _StrictIn, check_url
from sayso_common.clock import utcnow
from sayso_common.documents import NotificationDoc, UserDoc
from sayso_common.errors import NotFoundError
from sayso_common.mongo import AGENTS, NOTIFICATIONS, USERS, Database, Doc, collection
from sayso_common.secretbox import SecretBox

Clock = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local time, HH:MM")


class QuietHoursIn(_StrictIn):
    start: str = Clock
    end: str = Clock
    time_zone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Berlin or UTC") from None
        return value


class QuietHoursOut(Out):
    start: str
    end: str
    time_zone: str


def _slack_url(value: str | None) -> str | None:
    # Shape only; where it may point is the notifier's SSRF guard's call, at send time (plain
    # http stays allowed: Slack-compatible receivers such as Mattermost run on internal hosts).
    return check_url(value)


class PreferencesIn(_StrictIn):
    """Fields left out keep their value; ``null`` clears one."""

    email: bool | None = Field(default=None, description="E-mail notices (default on)")
    slack_webhook_url: str | None = Field(default=None, description="Your Slack incoming-webhook URL")
    quiet_hours: QuietHoursIn | None = None
    escalations_during_quiet_hours: bool | None = Field(
        default=None,
        description="Let a review's escalation through during your quiet hours (default off: held back too)",
    )
    operator_emails: bool | None = Field(
        default=None,
        description="E-mail about your webhooks' incidents: an endpoint disabled, deliveries failing "
        "for good, a circuit open too long; one per incident (default on)",
    )

    _slack = field_validator("slack_webhook_url")(_slack_url)


class PreferencesOut(Out):
    email: bool
    email_address: str
    slack_webhook_set: bool
    slack_webhook_host: str | None = None
    quiet_hours: QuietHoursOut | None = None
    escalations_during_quiet_hours: bool
    operator_emails: bool


class ChannelSlackIn(_StrictIn):
    slack_webhook_url: str | None = Field(
        description="The channel's Slack incoming-webhook URL; null removes it"
    )

    _slack = field_validator("slack_webhook_url")(_slack_url)


class ChannelSlackOut(Out):
    slack_webhook_set: bool
    slack_webhook_host: str | None = None


class NotificationAttemptOut(Out):
    at: datetime
    duration_ms: float
    error_kind: str | None = None
    error: str | None = None
    by: str = Field(description="The notifier process that made it")


class NotificationOut(Out):
    id: str
    message_id: str
    channel_id: str
    kind: str
    purpose: str
    recipient: str = Field(description="The e-mail address, or the Slack destination")
    state: str
    attempt_count: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    deferred_until: datetime | None = None
    link_used_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    attempts: list[NotificationAttemptOut]


def preferences_view(user: UserDoc) -> PreferencesOut:
    prefs = user.get("notifications") or {}
    quiet = prefs.get("quiet_hours")
    return PreferencesOut(
        email=prefs.get("email", True),
        email_address=user["email"],
        slack_webhook_set=bool(prefs.get("slack_webhook_enc")),
        slack_webhook_host=prefs.get("slack_webhook_host"),
        quiet_hours=QuietHoursOut(**quiet) if quiet else None,
        escalations_during_quiet_hours=prefs.get("escalations_during_quiet_hours", False),
        operator_emails=prefs.get("operator_emails", True),
    )


async def get_preferences(db: Database, user_id: str) -> PreferencesOut:
    user = await collection(db, USERS).find_one({"_id": user_id})
    if user is None:
        raise NotFoundError("user")
    return preferences_view(user)


async def set_preferences(db: Database, box: SecretBox, user_id: str, body: PreferencesIn) -> PreferencesOut:
    given = body.model_fields_set
    changes: Doc = {}
    if "email" in given:
        changes["notifications.email"] = body.email is not False
    if "slack_webhook_url" in given:
        url = body.slack_webhook_url
        changes["notifications.slack_webhook_enc"] = box.seal(url) if url else None
        changes["notifications.slack_webhook_host"] = urlsplit(url).hostname if url else None
    if "quiet_hours" in given:
        changes["notifications.quiet_hours"] = body.quiet_hours.model_dump() if body.quiet_hours else None
    if "escalations_during_quiet_hours" in given:
        changes["notifications.escalations_during_quiet_hours"] = body.escalations_during_quiet_hours is True
    if "operator_emails" in given:
        changes["notifications.operator_emails"] = body.operator_emails is not False
    if changes:
        await collection(db, USERS).update_one({"_id": user_id}, {"$set": changes})
    return await get_preferences(db, user_id)


def _channel_view(agent: Any) -> ChannelSlackOut:
    return ChannelSlackOut(
        slack_webhook_set=bool(agent.get("slack_webhook_enc")),
        slack_webhook_host=agent.get("slack_webhook_host"),
    )


async def get_channel_slack(db: Database, owner_id: str, channel_id: str) -> ChannelSlackOut:
    agent = await collection(db, AGENTS).find_one(
        {"_id": channel_id, "owner_id": owner_id}, {"slack_webhook_enc": 1, "slack_webhook_host": 1}
    )
    if agent is None:
        raise NotFoundError("channel")
    return _channel_view(agent)


async def set_channel_slack(
    db: Database, box: SecretBox, owner_id: str, channel_id: str, body: ChannelSlackIn
) -> ChannelSlackOut:
    url = body.slack_webhook_url
    result = await collection(db, AGENTS).update_one(
        {"_id": channel_id, "owner_id": owner_id},
        {
            "$set": {
                "slack_webhook_enc": box.seal(url) if url else None,
                "slack_webhook_host": urlsplit(url).hostname if url else None,
                "updated_at": utcnow(),
            }
        },
    )
    if result.matched_count == 0:
        raise NotFoundError("channel")
    return await get_channel_slack(db, owner_id, channel_id)


def notification_view(doc: NotificationDoc) -> NotificationOut:
    if doc["kind"] == "email":
        recipient = doc.get("address") or doc["recipient_id"]
    else:
        recipient = f"Slack ({'channel' if doc['recipient_kind'] == 'channel' else 'user'} webhook)"
    return NotificationOut(
        id=doc["_id"],
        message_id=doc["message_id"],
        channel_id=doc["channel_id"],
        kind=doc["kind"],
        purpose=doc["purpose"],
        recipient=recipient,
        state=doc["state"],
        attempt_count=doc.get("attempt_count", 0),
        last_error=doc.get("last_error"),
        next_attempt_at=doc.get("next_attempt_at") if doc["state"] == "pending" else None,
        deferred_until=doc.get("deferred_until"),
        link_used_at=doc.get("link_used_at"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        attempts=[
            NotificationAttemptOut(**{k: a[k] for k in ("at", "duration_ms", "error_kind", "error", "by")})
            for a in doc.get("attempts", [])
        ],
    )


async def list_notifications(
    db: Database, owner_id: str, message_id: str | None, limit: int
) -> list[NotificationOut]:
    """The owner's notifications, newest first (of one message, or all)."""
    query: Doc = {"owner_id": owner_id}
    if message_id:
        query["message_id"] = message_id
    docs = await collection(db, NOTIFICATIONS).find(query).sort("_id", -1).limit(limit).to_list()
    return [notification_view(d) for d in docs]
