"""Answering a review from outside the inbox: a one-click link from an e-mail, or a Slack button.

Both carry a signed answer token (``sayso_common.answer_links``) naming the notification it
was sent in, the review, the user it answers as and the option. Using one is two writes: the
notification's links are marked used (a conditional update, so a token works once, and a
replayed Slack click finds it used), then the answer goes through ``Reviewing.respond``, the same
first-response-wins path (or quorum vote) as the inbox. If that second write fails for a reason
that is not the review's (the database), the link is given back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pymongo.errors import PyMongoError

from sayso_api.reviewing import Reviewing
from sayso_common import answer_links, membership, notifications, reviews
from sayso_common.answer_links import AnswerLink, LinkError
from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc, NotificationDoc
from sayso_common.errors import ConflictError
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, MESSAGES, NOTIFICATIONS, Database, collection
from sayso_common.views import MessageView

Status = Literal["ready", "answered", "used", "closed", "revoked", "invalid"]

REVOKED = "this link no longer works: you are no longer a reviewer of this channel"


@dataclass(frozen=True)
class Found:
    """What a token leads to, for the confirmation page and the Slack handler."""

    status: Status
    reason: str
    link: AnswerLink | None = None
    notification: NotificationDoc | None = None
    message: MessageDoc | None = None
    view: MessageView | None = None

    @property
    def label(self) -> str:
        if self.link is None or self.message is None or "review" not in self.message:
            return ""
        return reviews.of(self.message["review"]).label(self.link.option)


async def look_up(db: Database, key: bytes, token: str, now: datetime) -> Found:
    """Read what a token names without changing anything (the GET of a link: mail scanners
    that follow links answer nothing)."""
    try:
        link = answer_links.verify(key, token, now)
    except LinkError as exc:
        return Found("closed" if exc.code == "link_expired" else "invalid", exc.message)
    notification = await collection(db, NOTIFICATIONS).find_one(
        {"_id": link.notification_id, "message_id": link.message_id, "responder_id": link.responder_id}
    )
    message = await collection(db, MESSAGES).find_one({"_id": link.message_id}, {"outbox": 0})
    if notification is None or message is None or "review" not in message:
        return Found("invalid", "this link belongs to a review that no longer exists", link)
    review = message["review"]
    # The token names who it answers as, not whether they still may: read that now (a member
    # removed since the notice was sent, or whose links were withdrawn by that removal).
    agent = await collection(db, AGENTS).find_one(
        {"_id": message["channel_id"]}, {"owner_id": 1, "members.user_id": 1}
    )
    if (
        agent is None
        or notification.get("link_revoked_at")
        or not membership.may_answer(agent, link.responder_id)
    ):
        return Found("revoked", REVOKED, link, notification, message)
    if notification.get("link_used_at"):
        return Found("used", "this link was already used", link, notification, message)
    closed = reviews.closure(review, now)
    if closed is not None:
        why = "it has already been answered" if closed == "answered" else "its deadline has passed"
        return Found("closed", f"this review is closed: {why}", link, notification, message)
    return Found("ready", "", link, notification, message)


async def answer(db: Database, reviewing: Reviewing, key: bytes, token: str) -> Found:
    """Use a token: mark it used, then answer as its recipient. Returns what happened; raises
    only for database trouble (the link is then given back)."""
    now = utcnow()
    found = await look_up(db, key, token, now)
    if found.status != "ready":
        return found
    link, message = found.link, found.message
    assert link is not None
    assert message is not None
    try:
        response = reviews.of(message["review"]).one_click(link.option)
    except reviews.ReviewError as exc:
        return Found("invalid", exc.message, link, found.notification, message)
    used = await collection(db, NOTIFICATIONS).update_one(*notifications.link_used(link.notification_id, now))
    if not used.matched_count:
        return Found("used", "this link was already used", link, found.notification, message)
    try:
        view = await reviewing.respond(
            # The token is the credential, for a recipient look_up found still among the
            # channel's reviewers (owner or member).
            Reach(message["owner_id"]),
            message["_id"],
            link.responder_id,
            response,
        )
    except ConflictError as exc:
        return Found("closed", f"this review is closed: {exc.message}", link, found.notification, message)
    except PyMongoError:
        await collection(db, NOTIFICATIONS).update_one(
            *notifications.link_released(link.notification_id, now)
        )
        raise
    return Found("answered", "", link, found.notification, message, view)
