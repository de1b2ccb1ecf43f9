"""The stored documents, typed: one ``TypedDict`` per collection (and per embedded shape), shared
by every service that reads or writes it.

TypedDicts cost nothing at run time (a stored document stays the plain ``dict`` pymongo decodes),
but mypy now checks every key a service reads or writes against the contract here: a typo, or a
field one service writes and another reads under a different name, fails the type check. The
collections are typed through :func:`sayso_common.mongo.collection`, so a ``find_one`` on
``MESSAGES`` returns a :class:`MessageDoc`.

Keys that every stored document has are ``Required``; the rest may be absent (older documents,
optional fields, and reads with a projection, which return only part of a document).

The state changes of these documents have one builder each, used by every service that makes the
change: deliveries in :mod:`sayso_common.deliveries`, reviews in
:mod:`sayso_common.review_state`, signing secrets in :mod:`sayso_common.signing_secrets`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Required, TypedDict

from sayso_common.views import DeliveryStatus, MessageStatus, ReviewStatus, ReviewType, SenderType

# An event as it sits in a document's ``outbox`` array until the relay publishes it (see
# ``sayso_common.events.event_to_document``): the event model dumped to BSON-friendly values.
OutboxEntry = dict[str, Any]

WebhookEvent = Literal["review:responded", "review:expired", "message:created"]
# Which agent events a default webhook URL receives unless the agent chooses (Placet's default).
DEFAULT_WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("review:responded", "review:expired")

AgentStatus = Literal["active", "busy", "error", "offline"]
# An agent that never pinged reads as offline (Placet's default).
DEFAULT_AGENT_STATUS: AgentStatus = "offline"
DeliveryState = Literal["pending", "delivered", "failed"]
DeliverySource = Literal["message", "agent", "callback", "test", "endpoint"]
FileState = Literal["pending", "uploading", "ready"]
# Why a review expired when it was not its deadline (absent: the deadline passed).
ExpiryReason = Literal["channel_deleted"]


class SecretDoc(TypedDict):
    """One signing secret in a list (an agent's webhook secrets, a trigger's secrets), sealed
    with :class:`sayso_common.secretbox.SecretBox`. ``expires_at`` None = the current one."""

    secret_enc: str
    created_at: datetime
    expires_at: datetime | None


class QuietHoursDoc(TypedDict):
    """Local times (``HH:MM``) in an IANA time zone; ``start`` after ``end`` spans midnight."""

    start: str
    end: str
    time_zone: str


class NotificationPrefsDoc(TypedDict, total=False):
    """How a user wants to be told about reviews (the notifier reads it at send time)."""

    email: bool  # absent = on
    slack_webhook_enc: str | None  # sealed Slack incoming-webhook URL (the URL is a credential)
    slack_webhook_host: str | None  # what screens show instead of the URL
    quiet_hours: QuietHoursDoc | None
    escalations_during_quiet_hours: bool  # absent = off: quiet hours hold escalations back too
    operator_emails: bool  # absent = on: e-mail about webhook incidents (sayso_common.incidents)


class UserDoc(TypedDict, total=False):
    _id: Required[str]
    email: Required[str]
    password_hash: Required[str]
    is_admin: bool
    notifications: NotificationPrefsDoc
    created_at: Required[datetime]


class ApiKeyDoc(TypedDict, total=False):
    _id: Required[str]
    owner_id: Required[str]
    key_hash: Required[str]  # SHA-256 of the key; the key itself is shown once
    prefix: str
    label: str | None
    created_at: Required[datetime]
    last_used_at: datetime | None
    revoked_at: datetime | None


class ScopedTokenDoc(TypedDict, total=False):
    """A read-only token for embedding (``sct_…``): some of its owner's channels, until
    ``expires_at`` (see :mod:`sayso_common.scoped_tokens`)."""

    _id: Required[str]
    owner_id: Required[str]
    token_hash: Required[str]  # SHA-256 of the token; the token itself is shown once
    prefix: str
    name: str | None
    channel_ids: Required[list[str]]
    # Whether it may also answer the reviews of those channels.
    answer: bool
    created_at: Required[datetime]
    expires_at: Required[datetime]
    revoked_at: datetime | None


class StreamTicketDoc(TypedDict):
    """A stream ticket waiting to be used (``tk_…``; see :mod:`sayso_realtime.tickets`): what
    the credential that minted it may read, kept until it is used once or ``expire_at`` passes.
    ``_id`` is the SHA-256 of the ticket."""

    _id: str
    owner_id: str
    kind: Literal["api_key", "user", "scoped"]
    # The minting credential's id as the credential watch knows it (a key's or token's hash).
    credential_id: str
    key_id: str | None
    # The minting session's own expiry (epoch seconds), which the stream keeps.
    credential_expires_at: float | None
    channel_ids: list[str] | None
    answer: bool
    expire_at: datetime


class MemberDoc(TypedDict):
    """A reviewer the channel's owner shared the channel with (see
    :mod:`sayso_common.membership`): reads and answers its reviews, manages nothing."""

    user_id: str
    email: str
    added_at: datetime


class CommandDoc(TypedDict, total=False):
    command: Required[str]
    description: str
    usage: str


class AgentDoc(TypedDict, total=False):
    """An agent, which is also a channel (Placet: the agent's id is its channel id)."""

    _id: Required[str]
    owner_id: Required[str]
    name: Required[str]
    description: str | None
    avatar_url: str | None
    tag: str | None
    commands: list[CommandDoc]
    webhook_url: str | None
    webhook_format: str | None
    webhook_enabled: bool
    webhook_disabled_reason: str | None
    webhook_disabled_at: datetime | None  # when a 410 disabled it (names that incident)
    webhook_events: list[WebhookEvent]
    webhook_headers_enc: str | None  # sealed JSON object of extra headers
    webhook_header_names: list[str]
    webhook_auth_enc: str | None  # sealed {"username", "password"}
    webhook_auth_username: str | None
    retry_schedule: list[int] | None
    signing_secrets: list[SecretDoc]
    slack_webhook_enc: str | None  # sealed Slack incoming-webhook URL for the whole channel
    slack_webhook_host: str | None
    members: list[MemberDoc]
    status: AgentStatus
    status_message: str | None
    status_since: datetime
    last_activity_at: datetime
    created_at: Required[datetime]
    updated_at: datetime
    outbox: list[OutboxEntry]
    outbox_dead: list[OutboxEntry]


class KafkaDestinationDoc(TypedDict, total=False):
    """An endpoint's Kafka topic (:mod:`sayso_common.kafka_destinations`)."""

    topic: Required[str]
    bootstrap: list[str] | None  # host:port servers; None: the stack's own cluster
    security_protocol: str  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None
    username: str | None
    # Sealed {"password"?, "caCert"?}: never shown, never logged.
    secrets_enc: str | None
    has_password: bool
    has_ca_cert: bool


class EndpointDoc(TypedDict, total=False):
    """A webhook endpoint beside the agent's own URL (:mod:`sayso_common.endpoints`): a channel's
    (``channel_id``) or a whole account's (``channel_id`` None)."""

    _id: Required[str]
    owner_id: Required[str]
    channel_id: Required[str | None]
    # An HTTP endpoint's URL; a Kafka destination's kafka://… name (see ``kafka``).
    url: Required[str]
    kafka: KafkaDestinationDoc | None  # set: deliveries are produced to this topic, not POSTed
    description: str | None
    event_types: list[str]  # names and groups (review:*) of sayso_common.endpoints.ENDPOINT_EVENTS
    # The filter as JSON text (sayso_common.filters, over sayso_common.endpoints.filter_document):
    # a filter's keys are free text (dots, $, NUL) that a BSON field name cannot always hold.
    filter_json: str | None
    format: str  # placet | processa | standard
    headers_enc: str | None  # sealed JSON object of extra headers
    header_names: list[str]
    auth_enc: str | None  # sealed {"username", "password"}
    auth_username: str | None
    rate_limit: int | None  # deliveries per second, across every dispatcher
    disabled: bool
    disabled_reason: str | None
    # When the dispatcher disabled it (a 410, or too many failed deliveries); None when it was
    # not the dispatcher. Names the incident, so one disabling is told once.
    auto_disabled_at: datetime | None
    signing_secrets: list[SecretDoc]
    created_at: Required[datetime]
    updated_at: datetime


class DeletedAgentDoc(AgentDoc, total=False):
    """What a deleted agent leaves for the webhooks still owed to it (see
    :mod:`sayso_common.deleted_channels`): its webhook settings and sealed signing secrets, until
    ``expire_at`` (TTL)."""

    deleted_at: datetime
    expire_at: datetime


class LeftEventDoc(TypedDict, total=False):
    """One event of a deleted channel's messages, moved out of the message's outbox before the
    message is deleted, so the relay still publishes it (TTL ``expire_at``, long after that)."""

    _id: Required[str]  # the event's id: moving the same event twice keeps one
    channel_id: Required[str]
    owner_id: Required[str]
    outbox: list[OutboxEntry]
    expire_at: Required[datetime]


class CallbackDoc(TypedDict, total=False):
    url: Required[str]
    method: str
    headers_enc: str


class OnExpireDoc(TypedDict):
    """What a review becomes when nobody answers in time: ``response`` is validated like a human
    answer when the message is created, and copied to ``default_response`` on expiry."""

    response: Any


class QuorumDoc(TypedDict):
    """An approval review that needs ``approvals`` distinct reviewers to approve (see
    :mod:`sayso_common.quorum`)."""

    approvals: int


class VoteDoc(TypedDict):
    """One reviewer's answer to a quorum review."""

    user_id: str
    email: str
    response: Any
    at: datetime


class DecidedByDoc(TypedDict):
    """The policy rule that answered a review instead of a human (see sayso_common.policies):
    the policy's id, the rule's index in it, and the policy's version then."""

    policy: str
    rule: int
    version: int


class RememberedDecisionDoc(TypedDict):
    """The remembered approval that answered a review instead of a human (see
    sayso_api.remembered): its id, the user whose answer created it, and that answer's review."""

    remembered: str
    granted_by: str
    review: str


class PolicyFallbackDoc(TypedDict):
    """A policy rule that matched a new review but could not answer it (its response did not fit
    the review): the review waits for a person, and this says which rule and why."""

    policy: str
    rule: int | None
    version: int
    reason: str


class EscalationStepDoc(TypedDict):
    after_seconds: int  # after the review was created
    notify: list[str]  # users' e-mails, lower case


class ReviewDoc(TypedDict, total=False):
    type: Required[ReviewType]
    payload: dict[str, Any]
    status: Required[ReviewStatus]
    expires_at: datetime
    callback: CallbackDoc
    reminders: list[int]  # seconds before expires_at at which the notifier reminds
    escalation: list[EscalationStepDoc]
    response: Any
    responded_by: str
    responded_at: datetime
    completed_at: datetime
    expired_at: datetime
    expired_reason: ExpiryReason  # absent when the deadline passed
    feedback: str
    modified_file_ids: dict[str, str]
    on_expire: OnExpireDoc
    default_response: Any  # on_expire's response, once the review expired with it
    quorum: QuorumDoc
    votes: list[VoteDoc]  # [] from creation on quorum reviews (votes are counted by $size)
    content_digest: str  # what the reviewer is shown (review_state.content_digest), fixed at creation
    # set (and responded_by absent) when a policy rule or a remembered approval answered it
    decided_by: DecidedByDoc | RememberedDecisionDoc
    action_digest: str  # the agent's review.actionDigest, else sayso_common.action_digest; at creation
    policy_fallback: PolicyFallbackDoc  # a matching rule that could not answer it
    risk: Literal["low", "medium", "high", "critical"]  # metadata.risk or the rule's, the higher
    risk_rank: int  # 0 (none) to 4 (critical): what the inbox sorts on; set on every new review
    notify: list[str]  # an ask rule's notify: the only reviewers the notifier tells (user ids)


class AttachmentDoc(TypedDict, total=False):
    """A file attached to a message, copied onto the message when it is created."""

    id: Required[str]
    channel_id: str | None
    message_id: str | None
    filename: Required[str]
    mime_type: Required[str]
    size: int
    plugin_type: str
    text_content: str
    created_at: Required[datetime]


class StatusEventDoc(TypedDict, total=False):
    id: Required[str]
    channel_id: str
    stream_id: str
    index: int
    text: str
    tool_hint: bool
    created_at: datetime


class MessageDoc(TypedDict, total=False):
    _id: Required[str]
    channel_id: Required[str]
    owner_id: Required[str]
    sender_type: SenderType
    sender_id: str
    sender_name: str
    sender_avatar_url: str
    text: str
    status: MessageStatus
    metadata: dict[str, Any]
    webhook_url: str
    webhook_format: str
    iteration_of: str
    group_id: str
    iteration: int
    client_id: str
    correlation_id: str
    request_hash: str  # what a retry with the same clientId must match
    review: ReviewDoc
    attachments: list[AttachmentDoc]
    stream_id: str
    stream_state: Literal["streaming", "complete", "aborted"]
    status_events: list[StatusEventDoc]
    delivery_status: DeliveryStatus
    acknowledged_at: datetime
    # Its content was removed on the owner's request (sayso_api.expunge); id, channel, times and
    # statuses stay.
    expunged: bool
    expunged_at: datetime
    created_at: Required[datetime]
    updated_at: datetime
    outbox: list[OutboxEntry]
    outbox_dead: list[OutboxEntry]


class AttemptDoc(TypedDict):
    at: datetime
    duration_ms: float
    status_code: int | None
    error_kind: str | None
    error: str | None
    body: str | None  # the first 1 KB of the response
    by: str  # the dispatcher process that made it


class DeliveryDoc(TypedDict, total=False):
    """One event x URL: the unit of work, retry and audit (see :mod:`sayso_common.deliveries`)."""

    _id: Required[str]
    event_id: Required[str]  # also the webhook-id header
    event_type: Required[str]
    channel_id: Required[str]
    owner_id: Required[str]
    message_id: str | None
    url: Required[str]
    endpoint_id: str | None  # the explicit endpoint it goes to; None: the agent's implicit one
    host: str  # host:port, what lanes and circuits are keyed on
    method: str
    source: DeliverySource
    headers_enc: str | None
    body: str  # the exact JSON text sent
    # Retry delays, fixed at creation; None (a delivery the API made): the sending dispatcher's
    # SAYSO_DISPATCHER_RETRY_SCHEDULE.
    schedule: list[int] | None
    state: Required[DeliveryState]
    status: Required[DeliveryStatus]
    attempt_count: int
    round_attempts: int  # since the last manual re-queue
    attempts: list[AttemptDoc]
    next_attempt_at: datetime
    claim: str | None
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime
    delivered_at: datetime
    failed_at: datetime
    requeued_at: datetime
    event_at: datetime  # when the event happened, for the event-to-webhook latency metric
    traceparent: str  # the W3C trace of the request that caused the event
    created_at: Required[datetime]
    updated_at: Required[datetime]
    outbox: list[OutboxEntry]
    outbox_dead: list[OutboxEntry]


IncidentKind = Literal["endpoint_disabled", "retries_exhausted", "circuit_open"]


class IncidentDoc(TypedDict, total=False):
    """The incidents of one kind x webhook target (:mod:`sayso_common.incidents`): whether one is
    open, and the operator event that told of its start, in the outbox of the very write that
    opened it. ``_id`` is ``kind|subject``, so dispatcher replicas racing to open it open it once."""

    _id: Required[str]
    kind: Required[IncidentKind]
    subject: Required[str]  # the endpoint id, or ``channel id|url`` for a channel's own URL
    owner_id: Required[str]
    channel_id: str
    endpoint_id: str | None
    url: str
    state: Required[Literal["open", "resolved"]]
    incident_id: str  # the current (or last) one's id
    since: datetime  # when it began (endpoint_disabled: when the target was disabled)
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None  # why it ended
    failures: int  # retries_exhausted: deliveries failed for good since it began
    updated_at: datetime
    outbox: list[OutboxEntry]
    outbox_dead: list[OutboxEntry]


class IncidentNoticeDoc(TypedDict):
    """What an operator e-mail says (copied from its event when the notifier plans it)."""

    type: str  # operator.endpoint_disabled …
    endpoint_id: str | None
    url: str
    reason: str
    since: datetime


NotificationKind = Literal["email", "slack"]
# pending: due at next_attempt_at (new, deferred by quiet hours, retrying, or scheduled: reminders
# and escalations); the rest are final.
NotificationState = Literal["pending", "sent", "failed", "cancelled", "skipped"]
# Who a notification is for: a user, a channel's own Slack webhook, or an escalation e-mail that
# names none of the channel's reviewers (recorded as skipped, so the operator sees it).
RecipientKind = Literal["user", "channel", "address"]


class NotificationAttemptDoc(TypedDict):
    at: datetime
    duration_ms: float
    error_kind: str | None
    error: str | None  # never the URL or the SMTP credentials
    by: str  # the notifier process that made it


class NotificationDoc(TypedDict, total=False):
    """One review x recipient x kind x purpose (see :mod:`sayso_common.notifications`): the
    unit of work, retry and audit of the notifier, claimed with a lease like a delivery."""

    _id: Required[str]
    key: Required[str]  # message|recipient|kind|purpose, unique: a redelivered event adds nothing
    message_id: Required[str]
    channel_id: Required[str]
    owner_id: Required[str]  # the channel's owner: whose operator page lists it
    kind: Required[NotificationKind]
    # "review" (it arrived), "reminder:<i>", "escalation:<i>", "outcome" (a Slack message updated)
    purpose: Required[str]
    recipient_kind: Required[RecipientKind]
    recipient_id: Required[str]  # user id, channel id, or the e-mail of an unknown escalation
    responder_id: str | None  # the user its answer links answer as
    address: str | None  # e-mail address (kind email)
    escalation: bool  # quiet hours hold it back only if its recipient did not let escalations through
    state: Required[NotificationState]
    attempt_count: int
    attempts: list[NotificationAttemptDoc]
    next_attempt_at: datetime
    deferred_until: datetime | None  # last held back by quiet hours until then
    claim: str | None
    last_error: str | None
    sent_at: datetime
    finished_at: datetime
    link_used_at: datetime  # an answer link or Slack button of it was used (single use)
    link_revoked_at: datetime  # its recipient was removed from the channel: its links answer nothing
    response_url_enc: str | None  # sealed Slack response_url an outcome replaces the message through
    # An operator notice (purpose ``operator:<kind>``): what it tells; its message_id is the
    # incident's id, not a message's.
    incident: IncidentNoticeDoc
    created_at: Required[datetime]
    updated_at: Required[datetime]


class InboundWebhookDoc(TypedDict, total=False):
    _id: Required[str]
    owner_id: Required[str]
    channel_id: Required[str]
    name: Required[str]
    avatar_url: str | None
    active: bool
    token_hash: Required[str]
    created_at: Required[datetime]
    last_used_at: datetime | None


class TriggerDoc(TypedDict, total=False):
    _id: Required[str]
    owner_id: Required[str]
    channel_id: Required[str]
    name: Required[str]
    mapping: dict[str, Any]
    required: list[str]
    allow_ips: list[str]
    active: bool
    secrets: list[SecretDoc]
    created_at: Required[datetime]
    updated_at: datetime
    last_used_at: datetime | None


class PublishedAt(TypedDict):
    topic: str
    partition: int
    offset: int


class EventDoc(TypedDict, total=False):
    """A published event kept for resume and long-poll history (TTL ``expire_at``): the event's
    own fields (see ``sayso_common.events``), its id as ``_id``."""

    _id: Required[str]
    type: Required[str]
    channel_id: Required[str]
    owner_id: Required[str]
    occurred_at: Required[datetime]
    traceparent: str | None
    data: Required[dict[str, Any]]
    expire_at: datetime
    # When the relay stored it (realtime resume and the pull feed order by it; absent on older documents, whose
    # expire_at was that time plus a fixed day).
    stored_at: datetime
    # Where the broker stored it (the relay's acknowledgement): what an idle consumer woken by
    # this document must read up to (sayso_common.fetch_gate). Absent on older documents.
    published: PublishedAt


class DeadLetterDoc(TypedDict, total=False):
    """An outbox entry the relay could not publish (too large for the broker, or unreadable),
    moved aside so the events behind it flow; kept until an operator deals with it."""

    _id: Required[str]  # the event's id (or a new one for an entry without a readable id)
    reason: Required[str]  # "too_large" | "unparseable"
    detail: Required[str]
    collection: Required[str]  # where the entry waited
    document_id: Required[Any]
    type: str | None
    channel_id: str | None
    owner_id: str | None
    size: int  # bytes, as JSON
    entry: Required[OutboxEntry]
    at: Required[datetime]


class LeaseDoc(TypedDict):
    _id: str
    holder: str
    until: datetime


class LoginAttemptsDoc(TypedDict, total=False):
    """Failed logins of one e-mail or address within a window, removed by its TTL index."""

    _id: Required[str]
    failures: int
    expire_at: datetime


class RateLimitDoc(TypedDict, total=False):
    """Requests of one key within one window (``key:window`` id), removed by its TTL index."""

    _id: Required[str]
    n: int
    expire_at: datetime


class FileDoc(TypedDict, total=False):
    """A file's record; its bytes live in the GridFS bucket under the same id."""

    _id: Required[str]
    owner_id: Required[str]
    channel_id: str | None
    message_id: str | None
    filename: Required[str]
    mime_type: Required[str]
    size: int | None
    plugin_type: str
    state: FileState
    upload_started_at: datetime
    upload_claim: str
    uploaded_at: datetime
    created_at: Required[datetime]
    expire_at: datetime  # set until the bytes arrive: an unclaimed upload goes away on its own
    unattached_since: datetime  # uploaded, attached to no message: the API's sweep deletes it later


PolicyScope = Literal["channel", "account"]


class PolicyDoc(TypedDict, total=False):
    """A policy (sayso_common.policies): one per channel (``channel_id`` set) and one per
    account (``channel_id`` null), each owner's. ``rules`` are stored as saved (their source);
    every save increments ``version`` and copies the rules to ``policy_versions``."""

    _id: Required[str]
    owner_id: Required[str]
    channel_id: Required[str | None]
    scope: PolicyScope
    rules: list[dict[str, Any]]
    version: Required[int]
    updated_at: datetime
    updated_by: str  # the user id, or "key:<api key id>"


RememberScope = Literal["channel", "run"]


class RememberedDoc(TypedDict, total=False):
    """A remembered approval (sayso_api.remembered): a person's approving answer standing for the
    same action in the same channel until ``expires_at`` — same ``metadata.tool``, same
    ``args_digest`` (sayso_common.action_digest.args_digest) and, for scope ``run``, the same
    ``metadata.runId``. Removed by the TTL index a day after ``expires_at``; a revoked one keeps
    ``revoked_at`` until then. Its events wait in ``outbox``."""

    _id: Required[str]
    owner_id: Required[str]
    channel_id: Required[str]
    tool: Required[str]
    args_digest: Required[str]
    scope: Required[RememberScope]
    run_id: str | None
    response: dict[str, Any]  # the approving answer it records on the reviews it answers
    review_id: Required[str]  # the review whose answer created it
    created_by: Required[str]  # the user who answered
    created_at: Required[datetime]
    expires_at: Required[datetime]
    revoked_at: datetime | None
    revoked_by: str | None
    outbox: list[OutboxEntry]
    outbox_dead: list[OutboxEntry]


class PolicyVersionDoc(TypedDict, total=False):
    """One saved version of a policy, kept as history (``_id`` is ``<policy id>:<version>``)."""

    _id: Required[str]
    policy_id: Required[str]
    owner_id: Required[str]
    channel_id: str | None
    version: Required[int]
    rules: list[dict[str, Any]]
    created_at: datetime
    created_by: str


AuditKind = Literal[
    "answered",
    "auto_decided",
    "voted",
    "quorum_decided",
    "expired",
    "expired_default",
    "withdrawn",
    "escalated",
    "policy_fallback",
    "policy_changed",
    "approval_remembered",
    "approval_revoked",
    "expunged",
]
ActorType = Literal["user", "policy", "system", "agent"]


class AuditActorDoc(TypedDict):
    """Who decided: a user (their id), a policy (its id), the system (the expirer, a channel's
    deletion) or an agent acting through an API key (the key's id)."""

    type: ActorType
    id: str | None


class AuditDoc(TypedDict, total=False):
    """One append-only audit entry (sayso_common.audit). ``_id`` is the event's id for entries
    derived from events (so storing one twice stores it once), ``policy:<id>:<version>`` for a
    policy change, ``escalation:<notification id>`` for an escalation step sent."""

    _id: Required[str]
    at: Required[datetime]  # also the retention TTL's field
    owner_id: Required[str]
    channel_id: str | None
    message_id: str | None
    kind: Required[AuditKind]
    actor: Required[AuditActorDoc]
    decision: str | None
    rule: int | None
    policy_version: int | None
    detail: dict[str, Any]
