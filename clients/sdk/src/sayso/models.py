"""What the API answers, as typed models. Field names are Python's (``channel_id``); the wire's
camelCase (``channelId``) is the alias, so ``Message.model_validate(api_json)`` just works.

Unknown fields are kept (``model_extra``), so a newer server never breaks an older SDK; the
fields below are checked against the running API's ``/openapi.json`` by the test suite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sayso.reviews import AnswerValue, parse_answer

ReviewType = Literal["approval", "selection", "form", "text-input", "freeform"]
ReviewStatus = Literal["pending", "completed", "expired"]
MessageStatus = Literal["info", "success", "warning", "error"]
SenderType = Literal["agent", "user", "webhook", "system"]
DeliveryStatus = Literal["sent", "webhook_delivered", "webhook_failed", "agent_received"]
WebhookFormat = Literal["placet", "processa"]
StreamState = Literal["streaming", "complete", "aborted"]
AgentStatus = Literal["active", "busy", "error", "offline"]
WebhookEvent = Literal["review:responded", "review:expired", "message:created"]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True, serialize_by_alias=True
    )


class Callback(ApiModel):
    url: str
    method: str = "POST"


class OnExpire(ApiModel):
    response: Any


class Quorum(ApiModel):
    approvals: int
    approved: int = 0


class Escalation(ApiModel):
    """A step of a review's escalation: who the notifier tells, how long after creation."""

    after_seconds: int
    notify: list[str]


class Vote(ApiModel):
    """One reviewer's vote on a quorum review."""

    user_id: str
    email: str
    response: Any
    voted_at: datetime


class DecidedBy(ApiModel):
    """What answered a review instead of a person: a policy rule (``policy``, ``rule``,
    ``version``) or a remembered approval (``remembered``, ``granted_by``, ``review``)."""

    policy: str | None = None
    rule: int | None = None
    version: int | None = None
    remembered: str | None = Field(default=None, description="The remembered approval's id (rem_…)")
    granted_by: str | None = Field(default=None, description="The user whose approving answer it remembers")
    review: str | None = Field(default=None, description="The review that answer was given to")


class PolicyFallback(ApiModel):
    """A policy rule that matched a review but could not answer it: which, and why."""

    policy: str
    rule: int | None = None
    version: int
    reason: str


class Review(ApiModel):
    """The review a message carries. Its id is the message's id."""

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
    callback: Callback | None = None
    on_expire: OnExpire | None = None
    default_response: Any = Field(default=None, description="onExpire's response, once the review expired")
    # A string, not the API's enum: an SDK must still read a reason added after it was released.
    expired_reason: str | None = Field(
        default=None, description="channel_deleted: expired because its channel was deleted"
    )
    quorum: Quorum | None = None
    votes: list[Vote] | None = None
    reminders: list[int] | None = Field(
        default=None, description="Seconds before expiresAt the notifier reminds at"
    )
    escalation: list[Escalation] | None = None
    content_digest: str | None = Field(
        default=None, description="sha256 of what the reviewer is shown, fixed when the message was created"
    )
    decided_by: DecidedBy | None = Field(
        default=None, description="The policy rule that answered the review (respondedBy is then None)"
    )
    action_digest: str | None = Field(
        default=None,
        description="sha256 of the review payload and metadata.tool/args (sayso.approval.action_digest)",
    )
    policy_fallback: PolicyFallback | None = Field(
        default=None, description="A policy rule matched but could not answer; the review waits for a person"
    )
    # A string, not the API's enum, as expired_reason.
    risk: str | None = Field(
        default=None,
        description="low, medium, high or critical: metadata.risk or a policy rule's, the higher",
    )
    notify: list[str] | None = Field(default=None, description="A policy's ask rule: the only reviewers told")

    @property
    def answer(self) -> AnswerValue | None:
        """The typed answer (:class:`ApprovalAnswer`, …) once completed, else None."""
        if self.status != "completed" or not isinstance(self.response, dict):
            return None
        return parse_answer(self.type, self.response)


class StatusEvent(ApiModel):
    """A progress step of a streamed message."""

    id: str
    channel_id: str
    stream_id: str
    index: int
    text: str
    tool_hint: bool = False
    created_at: datetime


class Attachment(ApiModel):
    id: str
    channel_id: str
    message_id: str | None = None
    filename: str
    mime_type: str
    size: int
    plugin_type: str = "file"
    text_content: str | None = None
    created_at: datetime


class Message(ApiModel):
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
    iteration: int | None = None
    iteration_group_id: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    stream_id: str | None = None
    stream_state: StreamState | None = None
    status_events: list[StatusEvent] = Field(default_factory=list)
    client_id: str | None = None
    correlation_id: str | None = None
    delivery_status: DeliveryStatus | None = None
    acknowledged: bool = False
    review: Review | None = None
    created_at: datetime
    updated_at: datetime | None = None
    expunged: bool | None = None
    expunged_at: datetime | None = None


class Command(ApiModel):
    command: str
    description: str
    accepts_args: bool | None = None
    arg_hint: str | None = None


class Agent(ApiModel):
    """An agent is a channel: its ``id`` is the ``channel_id`` messages go to."""

    id: str
    owner_id: str
    name: str
    description: str | None = None
    avatar_url: str | None = None
    tag: str | None = None
    commands: list[Command] = Field(default_factory=list)
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    webhook_auth: dict[str, str] | None = None
    webhook_format: WebhookFormat = "placet"
    webhook_enabled: bool = True
    webhook_disabled_reason: str | None = None
    webhook_events: list[WebhookEvent] = Field(default_factory=list)
    webhook_retry_schedule: list[int] | None = None
    status: AgentStatus = "offline"
    status_message: str | None = None
    status_since: datetime | None = None
    last_active_at: datetime | None = None
    last_activity_at: datetime | None = None
    created_at: datetime
    role: Literal["owner", "member"] = "owner"
    webhook_secret: str | None = Field(
        default=None, description="The signing secret (whsec_…), only in the answer that created the agent"
    )


class MessagePage(ApiModel):
    data: list[Message]
    next_cursor: str | None = None


class Policy(ApiModel):
    """A channel's or the account's policy: ordered rules, first match wins (see the README's
    *Policies*). ``id`` is None and ``version`` 0 until it is first saved."""

    id: str | None = None
    scope: Literal["channel", "account"]
    channel_id: str | None = None
    rules: list[dict[str, Any]]
    version: int
    updated_at: datetime | None = None


class PolicyAsked(ApiModel):
    """The review a matching ``ask`` rule would leave to people, its overrides applied."""

    quorum: dict[str, int] | None = None
    expires_in_seconds: int
    on_expire: dict[str, Any] | None = None
    notify: list[str] | None = None
    not_applied: list[str] = Field(default_factory=list)


class PolicyTest(ApiModel):
    """What a dry run says would happen to a message: ``action`` approve, reject or ask (a
    person), the rule that matched (None when none did), the risk the review would carry and,
    for an ``ask`` rule with overrides, the review people would get."""

    action: Literal["approve", "reject", "ask"]
    policy: str | None = None
    scope: Literal["channel", "account"] | None = None
    rule: int | None = None
    rule_name: str | None = None
    version: int | None = None
    response: dict[str, Any] | None = None
    risk: str | None = None
    reason: str | None = None
    review_risk: str | None = None
    asked: PolicyAsked | None = None


class AuditActor(ApiModel):
    """Who decided: a ``user`` (``name`` is their e-mail), a ``policy``, the ``system`` (an
    expiry) or an ``agent`` (an API key)."""

    type: Literal["user", "policy", "system", "agent"]
    id: str | None = None
    name: str | None = None


class AuditEntry(ApiModel):
    """One audit log entry: a decision or a policy change."""

    id: str
    at: datetime
    channel_id: str | None = None
    message_id: str | None = None
    kind: str
    actor: AuditActor
    decision: str | None = None
    rule: int | None = None
    policy_version: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditPage(ApiModel):
    data: list[AuditEntry]
    next_cursor: str | None = None


class IterationChain(ApiModel):
    group_id: str
    iterations: list[Message]


class WaitResult(ApiModel):
    """One long-poll's answer. ``status`` is ``completed`` or ``expired`` when the review ended,
    ``pending`` (Sayso, with ``timed_out``) or ``timeout`` (Placet) when the poll ran out."""

    status: str
    message: Message | None = None
    response: Any = None
    timed_out: bool = False

    @property
    def done(self) -> bool:
        return self.status in ("completed", "expired")


class Answer(BaseModel):
    """A completed review: the human's answer and the message it answers."""

    model_config = ConfigDict(frozen=True)

    message: Message

    @property
    def message_id(self) -> str:
        return self.message.id

    @property
    def review(self) -> Review:
        assert self.message.review is not None, "an answer always belongs to a review"
        return self.message.review

    @property
    def review_type(self) -> ReviewType:
        return self.review.type

    @property
    def response(self) -> dict[str, Any]:
        """The raw response, as the reviewer's client sent it."""
        raw = self.review.response
        return raw if isinstance(raw, dict) else {}

    @property
    def value(self) -> AnswerValue:
        """The typed answer: :class:`ApprovalAnswer`, :class:`SelectionAnswer`,
        :class:`FormAnswer`, :class:`TextInputAnswer`, :class:`FreeformAnswer` or
        :class:`Dismissed`."""
        return parse_answer(self.review_type, self.response)

    @property
    def feedback(self) -> str | None:
        return self.review.feedback

    @property
    def decided_by(self) -> DecidedBy | None:
        """The policy rule that answered instead of a person (None: a person answered)."""
        return self.review.decided_by


class Event(BaseModel):
    """One server-sent event from ``GET /api/v1/events``: ``type`` is ``message:created``,
    ``review:responded``, ``review:expired``, ``agent:status``, ``delivery:status`` …; ``data``
    is its JSON (for message events, the message as the API returns it)."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    type: str
    data: Any


class StreamTicket(ApiModel):
    """A single-use ticket that opens one event stream (``GET /api/v1/events?ticket=…``, what a
    browser's ``EventSource`` can send) or socket within 60 s. A reconnect needs a new one."""

    ticket: str
    expires_at: datetime


class ScopedToken(ApiModel):
    """A read-only token for embedding: reads some channels' messages and reviews and opens their
    streams, answers their reviews only with ``answer``. ``token`` is set only in the answer to
    its creation (it is shown once)."""

    id: str
    prefix: str
    name: str | None = None
    channel_ids: list[str]
    answer: bool
    created_at: datetime
    expires_at: datetime
    token: str | None = None


class Remembered(ApiModel):
    """A remembered approval: a person's approving answer standing for the same action (channel,
    ``metadata.tool``, arguments digest, and for scope ``run`` the run) until ``expires_at``."""

    id: str
    channel_id: str
    tool: str
    args_digest: str
    scope: Literal["channel", "run"]
    run_id: str | None = None
    response: dict[str, Any]
    review_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None


EndpointFormat = Literal["placet", "processa", "standard"]


class Endpoint(ApiModel):
    """A webhook endpoint beside the agent's own URL: a channel's, or the account's
    (``channel_id`` None). ``secret`` (whsec_…) is set only in the answer that created it."""

    id: str
    channel_id: str | None = None
    url: str  # a Kafka destination's reads kafka://[servers]/topic
    destination: dict[str, Any] | None = None  # a Kafka topic (see kafka_destination); None: HTTP
    description: str | None = None
    event_types: list[str]
    filter: dict[str, Any] | None = None
    format: str
    headers: dict[str, str] = Field(default_factory=dict)
    auth: dict[str, str] | None = None
    rate_limit: int | None = None
    disabled: bool
    disabled_reason: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    secret: str | None = None


class EndpointSecret(ApiModel):
    """A rotated endpoint signing secret (shown once); the old one signs too until then."""

    secret: str
    previous_expires_at: datetime | None = None


class EndpointRecovered(ApiModel):
    """What a recover re-queued: failed deliveries sent again with their own webhook-id."""

    requeued: int
    since: datetime
    more: bool


class EndpointReplayed(ApiModel):
    """What one replay call did; while ``more``, call again with ``after=next_cursor``."""

    queued: int
    requeued: int
    skipped: int
    scanned: int
    more: bool
    next_cursor: str | None = None


class FeedPage(ApiModel):
    """One page of the pull feed: events oldest first; pass ``next_cursor`` as ``after``."""

    data: list[dict[str, Any]]
    next_cursor: str | None = None
