"""The public JSON shape of a message, shared by the API's responses and every event payload.

Stored documents use snake_case; the wire uses Placet's camelCase. One conversion, here, so the
API, the realtime gateway and the dispatcher can never disagree on what a message looks like.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_serializer
from pydantic.alias_generators import to_camel

from sayso_common import quorum
from sayso_common.clock import as_utc

if TYPE_CHECKING:  # documents.py imports the literals below
    from sayso_common.documents import MessageDoc, VoteDoc

ReviewType = Literal["approval", "selection", "form", "text-input", "freeform"]
RiskLabel = Literal["low", "medium", "high", "critical"]
ReviewStatus = Literal["pending", "completed", "expired"]
MessageStatus = Literal["info", "success", "warning", "error"]
SenderType = Literal["agent", "user", "webhook", "system"]
DeliveryStatus = Literal["sent", "webhook_delivered", "webhook_failed", "agent_received"]
WebhookFormat = Literal["placet", "processa"]

# Serialise with this context where the full response must survive (event records, outbox,
# webhook bodies); every other dump (REST answers, sockets, SSE) hides password answers.
FULL = {"full": True}
REDACTED = "***REDACTED***"  # Placet's marker


def password_fields(payload: dict[str, Any]) -> list[str]:
    fields = payload.get("fields")
    if not isinstance(fields, list):
        return []
    return [f["name"] for f in fields if isinstance(f, dict) and f.get("type") == "password" and "name" in f]


class _View(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, serialize_by_alias=True
    )


class CallbackView(_View):
    url: str
    method: str = "POST"


class OnExpireView(_View):
    response: Any


class QuorumView(_View):
    approvals: int = Field(description="Distinct reviewers who must choose an approving option")
    approved: int = Field(default=0, description="Distinct reviewers who chose one so far")


class EscalationView(_View):
    after_seconds: int = Field(description="Seconds after the review was created")
    notify: list[str] = Field(description="E-mails of the users the notifier tells")


class VoteView(_View):
    """One reviewer's answer to a quorum review: who, what, when."""

    user_id: str
    email: str
    response: Any
    voted_at: datetime


def _absent(value: Any) -> bool:
    return value is None


class DecidedByView(_View):
    """What answered a review instead of a human: a policy rule (``policy``, ``rule``,
    ``version``) or a remembered approval (``remembered``, ``grantedBy``, ``review``). Only the
    keys of the one that decided are written."""

    policy: str | None = Field(
        default=None, exclude_if=_absent, description="The policy's id (a channel's or the account's)"
    )
    rule: int | None = Field(
        default=None, exclude_if=_absent, description="The rule's index in the policy, from 0"
    )
    version: int | None = Field(
        default=None, exclude_if=_absent, description="The policy's version when it decided"
    )
    remembered: str | None = Field(
        default=None, exclude_if=_absent, description="The remembered approval's id (rem_…)"
    )
    granted_by: str | None = Field(
        default=None, exclude_if=_absent, description="The user whose approving answer it remembers"
    )
    review: str | None = Field(
        default=None, exclude_if=_absent, description="The review that answer was given to"
    )


class PolicyFallbackView(_View):
    """A policy rule that matched the review as it arrived but could not answer it."""

    policy: str = Field(description="The policy's id")
    rule: int | None = Field(description="The rule's index in the policy, from 0")
    version: int = Field(description="The policy's version then")
    reason: str = Field(description="Why it could not answer (the review waits for a person)")


class ReviewView(_View):
    type: ReviewType
    payload: dict[str, Any] = Field(default_factory=dict)
    status: ReviewStatus
    expires_at: datetime | None = None
    response: Any = None
    responded_by: str | None = None
    responded_at: datetime | None = None
    completed_at: datetime | None = None
    feedback: str | None = None
    modified_file_ids: dict[str, str] | None = None
    callback: CallbackView | None = None
    on_expire: OnExpireView | None = Field(
        default=None, description="The answer the review takes if nobody answers before expiresAt"
    )
    default_response: Any = Field(
        default=None, description="Set when the review expired: onExpire's response, now in force"
    )
    expired_reason: Literal["channel_deleted"] | None = Field(
        default=None,
        description="Why an expired review expired before its deadline: channel_deleted when its "
        "channel was deleted while it was pending (its onExpire default does not apply); null when "
        "the deadline passed",
    )
    quorum: QuorumView | None = None
    votes: list[VoteView] | None = Field(default=None, description="Each reviewer's vote (quorum reviews)")
    reminders: list[int] | None = Field(
        default=None, description="Seconds before expiresAt at which the notifier reminds the reviewers"
    )
    escalation: list[EscalationView] | None = Field(default=None, description="Who else is told, and when")
    content_digest: str | None = Field(
        default=None,
        description="sha256 of what the reviewer is shown (text, metadata, attachments, review type and "
        "payload), fixed when the message is created: the answer is an answer to exactly that",
    )
    decided_by: DecidedByView | None = Field(
        default=None,
        description="Set when a policy rule answered the review as it was created (respondedBy is then "
        "null); null when a person answered",
    )
    action_digest: str | None = Field(
        default=None,
        description="sha256 of the review payload and metadata.tool/metadata.args as the agent sent them "
        "(or the agent's own review.actionDigest), fixed when the message is created: what an approval "
        "is bound to",
    )
    policy_fallback: PolicyFallbackView | None = Field(
        default=None,
        description="Set when a policy rule matched the review but could not answer it (its response did "
        "not fit the review): which rule and why; the review waits for a person. Shown to the channel's "
        "owner only",
    )
    risk: RiskLabel | None = Field(
        default=None,
        description="low, medium, high or critical: the higher of metadata.risk and the matching "
        "policy rule's risk, fixed when the message is created; null: neither labelled it",
    )
    notify: list[str] | None = Field(
        default=None,
        description="Set by a policy's ask rule: the only reviewers (user ids) the notifier tells",
    )

    @field_serializer("response", "default_response")
    def _hide_passwords(self, response: Any, info: SerializationInfo) -> Any:
        # As Placet: a password typed into a form reaches the agent's webhook, never a screen.
        if not isinstance(response, dict) or self.type != "form" or (info.context or {}).get("full"):
            return response
        hidden = [name for name in password_fields(self.payload) if response.get(name)]
        return {**response, **dict.fromkeys(hidden, REDACTED)} if hidden else response

    @field_serializer("on_expire")
    def _hide_default_passwords(
        self, on_expire: OnExpireView | None, info: SerializationInfo
    ) -> dict[str, Any] | None:
        if on_expire is None:
            return None
        return {"response": self._hide_passwords(on_expire.response, info)}


StreamState = Literal["streaming", "complete", "aborted"]


class StatusEventView(_View):
    """A progress step of a streamed message (``POST …/streams/{streamId}/status``)."""

    id: str
    channel_id: str
    stream_id: str
    index: int
    text: str
    tool_hint: bool = False
    created_at: datetime


class AttachmentView(_View):
    id: str
    channel_id: str
    message_id: str | None = None
    filename: str
    mime_type: str
    size: int
    plugin_type: str = "file"
    text_content: str | None = Field(default=None, description="Inline text of text attachments (<= 64 KB)")
    created_at: datetime


class MessageView(_View):
    id: str
    channel_id: str
    sender_type: SenderType = "agent"
    sender_name: str | None = None
    sender_avatar_url: str | None = None
    sender_id: str | None = None
    text: str | None = None
    status: MessageStatus | None = None
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_format: WebhookFormat | None = None
    iteration_of: str | None = None
    group_id: str | None = None
    iteration: int | None = Field(default=None, description="1 = root of an iteration chain, 2+ = revisions")
    iteration_group_id: str | None = Field(default=None, description="Root message id of the chain")
    attachments: list[AttachmentView] = Field(default_factory=list)
    stream_id: str | None = None
    stream_state: StreamState | None = None
    status_events: list[StatusEventView] = Field(default_factory=list)
    client_id: str | None = None
    correlation_id: str | None = None
    delivery_status: DeliveryStatus | None = None
    acknowledged: bool = False
    review: ReviewView | None = None
    created_at: datetime
    updated_at: datetime | None = None
    expunged: bool | None = Field(
        default=None, description="true once the owner expunged its content (null otherwise)"
    )
    expunged_at: datetime | None = None


# Projection for reading a message to show it: internal fields never leave the database.
MESSAGE_PROJECTION: dict[str, int] = {"outbox": 0, "outbox_dead": 0, "request_hash": 0}


def _dt(value: Any) -> datetime | None:
    return as_utc(value) if isinstance(value, datetime) else None


def vote_view(vote: VoteDoc) -> VoteView:
    voted_at = _dt(vote["at"])
    assert voted_at is not None, "stored votes always have their time"
    return VoteView(
        user_id=vote["user_id"], email=vote["email"], response=vote["response"], voted_at=voted_at
    )


def message_view(doc: MessageDoc) -> MessageView:
    """Build the public view of a stored message document."""
    review = doc.get("review")
    review_view = None
    if review:
        callback = review.get("callback")
        on_expire = review.get("on_expire")
        review_view = ReviewView(
            type=review["type"],
            payload=review.get("payload") or {},
            status=review["status"],
            expires_at=_dt(review.get("expires_at")),
            response=review.get("response"),
            responded_by=review.get("responded_by"),
            responded_at=_dt(review.get("responded_at")),
            completed_at=_dt(review.get("completed_at") or review.get("responded_at")),
            feedback=review.get("feedback"),
            modified_file_ids=review.get("modified_file_ids"),
            callback=(
                CallbackView(url=callback["url"], method=callback.get("method", "POST")) if callback else None
            ),
            on_expire=OnExpireView(response=on_expire["response"]) if on_expire else None,
            default_response=review.get("default_response"),
            expired_reason=review.get("expired_reason"),
            quorum=(
                QuorumView(
                    approvals=review["quorum"]["approvals"],
                    approved=quorum.approvals(review.get("payload") or {}, review.get("votes", [])),
                )
                if "quorum" in review
                else None
            ),
            votes=[vote_view(v) for v in review["votes"]] if "votes" in review else None,
            reminders=review.get("reminders"),
            escalation=[
                EscalationView(after_seconds=s["after_seconds"], notify=s["notify"])
                for s in review["escalation"]
            ]
            if "escalation" in review
            else None,
            content_digest=review.get("content_digest"),
            decided_by=DecidedByView(**review["decided_by"]) if "decided_by" in review else None,
            action_digest=review.get("action_digest"),
            policy_fallback=(
                PolicyFallbackView(**review["policy_fallback"]) if "policy_fallback" in review else None
            ),
            risk=review.get("risk"),
            notify=review.get("notify"),
        )
    created = _dt(doc.get("created_at"))
    assert created is not None, "stored messages always have created_at"
    return MessageView(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        sender_type=doc.get("sender_type", "agent"),
        sender_name=doc.get("sender_name"),
        sender_avatar_url=doc.get("sender_avatar_url"),
        sender_id=doc.get("sender_id")
        or (doc["channel_id"] if doc.get("sender_type", "agent") == "agent" else None),
        text=doc.get("text"),
        status=doc.get("status"),
        metadata=doc.get("metadata"),
        webhook_url=doc.get("webhook_url"),
        webhook_format=doc.get("webhook_format"),
        iteration_of=doc.get("iteration_of"),
        group_id=doc.get("group_id"),
        # Only chain members carry a number (the root becomes 1 when its first follow-up lands).
        iteration=doc.get("iteration"),
        iteration_group_id=doc.get("group_id") or (doc["_id"] if doc.get("iteration") else None),
        attachments=[AttachmentView.model_validate(a) for a in doc.get("attachments") or ()],
        stream_id=doc.get("stream_id"),
        stream_state=doc.get("stream_state"),
        status_events=[StatusEventView.model_validate(e) for e in doc.get("status_events") or ()],
        client_id=doc.get("client_id"),
        correlation_id=doc.get("correlation_id"),
        delivery_status=doc.get("delivery_status"),
        acknowledged=bool(doc.get("acknowledged_at")),
        review=review_view,
        created_at=created,
        updated_at=_dt(doc.get("updated_at")),
        expunged=doc.get("expunged"),
        expunged_at=_dt(doc.get("expunged_at")),
    )


def seen_by(view: MessageView, owner_id: str, reader_id: str) -> MessageView:
    """``view`` as ``reader_id`` may read it, for a message of ``owner_id``'s channel. The owner
    (signed in, or through an API key, which acts for its owner) reads all of it. A member of the
    channel (a user it was shared with) reads the message and its review but not the owner's
    webhook settings, as the agent view hides them from members: ``webhookUrl`` (its query may
    carry a token) and the review's ``callback``."""
    if reader_id == owner_id:
        return view
    review = view.review
    if review is not None and (review.callback is not None or review.policy_fallback is not None):
        # The owner's policy is theirs alone (members get 404 for it).
        review = review.model_copy(update={"callback": None, "policy_fallback": None})
    return view.model_copy(update={"webhook_url": None, "review": review})


def message_view_for(doc: MessageDoc, reader_id: str) -> MessageView:
    """The view of a stored message as ``reader_id`` may read it (see :func:`seen_by`)."""
    return seen_by(message_view(doc), doc["owner_id"], reader_id)
