"""Request and response bodies. Field names follow Placet's Agent API v1 (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from sayso_common.action_digest import PATTERN as ACTION_DIGEST_PATTERN
from sayso_common.documents import DEFAULT_AGENT_STATUS, DEFAULT_WEBHOOK_EVENTS, AgentStatus, WebhookEvent
from sayso_common.membership import MAX_MEMBERS
from sayso_common.scoped_tokens import MAX_TOKEN_CHANNELS, MAX_TOKEN_SECONDS
from sayso_common.views import MessageStatus, MessageView, ReviewType, StreamState, WebhookFormat
from sayso_common.webhook_signature import RESERVED_HEADERS


class _In(BaseModel):
    """Agent-facing bodies: unknown fields are ignored, as Placet's schemas do, so a client
    written for Placet (or a newer Sayso) is never refused for a field this one lacks."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _StrictIn(_In):
    """Bodies no Placet client sends (accounts, keys): a misspelt field is an error there."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """The base of every response model: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


def check_url(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in value):
        raise ValueError("must not contain whitespace, control characters or backslashes")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has an invalid port (a number from 1 to 65535)")
    # Where it may point is decided by the dispatcher's SSRF guard at connect time, not here:
    # DNS answers change between saving a URL and delivering to it.
    return value


Headers = dict[str, str]


# RFC 9110 token characters: what a header name may be made of.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _field_value_ok(value: str) -> bool:
    # Visible ASCII, space and tab inside; nothing that aiohttp (or a receiver) would refuse.
    return all(c == "\t" or 32 <= ord(c) < 127 for c in value) and value == value.strip(" \t")


def check_headers(value: Headers | None) -> Headers | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("at most 20 headers")
    for name, val in value.items():
        if not name or len(name) > 100 or not set(name) <= _TCHAR:
            raise ValueError(f"invalid header name {name!r} (letters, digits and !#$%&'*+-.^_`|~ only)")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(
                f"header {name!r} is set by Sayso or frames the request; it cannot be overridden"
            )
        if len(val) > 4096 or not _field_value_ok(val):
            raise ValueError(f"invalid value for header {name!r} (printable ASCII, no control characters)")
    return value


class CallbackIn(_In):
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: Headers | None = None

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class OnExpireIn(_In):
    response: dict[str, Any] = Field(
        description="The answer the review takes if nobody answers in time; checked like a human's"
    )


class QuorumIn(_In):
    approvals: int = Field(
        ge=1,
        le=MAX_MEMBERS + 1,
        description="Distinct reviewers (the owner and the channel's members) who must approve",
    )


Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class EscalationStepIn(_In):
    after_seconds: int = Field(ge=1, description="Seconds after the review was created")
    notify: list[Email] = Field(
        min_length=1, max_length=20, description="E-mails of the channel's owner or members to tell"
    )


class ReviewIn(_In):
    type: ReviewType
    payload: dict[str, Any] = Field(default_factory=dict)
    expires_in_seconds: int | None = Field(
        default=None, ge=1, description="Wins over expiresAt; longer than the maximum (36 h) is capped"
    )
    expires_at: datetime | None = None
    callback: CallbackIn | None = None
    on_expire: OnExpireIn | None = None
    quorum: QuorumIn | None = Field(default=None, description="Approval reviews only")
    reminders: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, max_length=10, description="Seconds before the deadline at which the notifier reminds"
    )
    escalation: list[EscalationStepIn] | None = Field(
        default=None, max_length=5, description="Who else the notifier tells, and when"
    )
    action_digest: str | None = Field(
        default=None,
        pattern=ACTION_DIGEST_PATTERN,
        description="64 lowercase hex digits, stored as given; else the server computes it "
        "(sayso_common.action_digest)",
    )


class TextAttachmentIn(_In):
    content: str = Field(min_length=1)
    filename: str = Field(default="content.md", min_length=1, max_length=255)
    mime_type: str = Field(default="text/markdown", min_length=1, max_length=255)


CONTENT_FIELDS = "text, review, status, attachmentIds, textAttachments"


class MessageIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str | None = None
    status: MessageStatus | None = None
    review: ReviewIn | None = None
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_format: WebhookFormat | None = Field(
        default=None, description="Body of this message's webhooks: placet (default) or processa"
    )
    attachment_ids: list[str] | None = Field(default=None, max_length=20)
    text_attachments: list[TextAttachmentIn] | None = Field(default=None, max_length=20)
    iteration_of: str | None = Field(default=None, min_length=1, max_length=100)
    client_id: str | None = Field(default=None, min_length=1, max_length=200)
    stream_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Starts a streamed draft; PATCH /api/v1/messages/streams/{streamId} fills it in",
    )
    stream_state: StreamState | None = None

    _url = field_validator("webhook_url")(check_url)

    def has_content(self) -> bool:
        content = (self.text, self.review, self.status, self.attachment_ids, self.text_attachments)
        return any(content) or bool(self.stream_id)


class StreamPatchIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str = Field(description="The whole text so far (replaces, not appends)")
    complete: bool = False
    stream_state: StreamState | None = Field(default=None, description="complete or aborted close the stream")


class StatusEventIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=1000)
    tool_hint: bool = False


class UserMessageIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str | None = None
    attachment_ids: list[str] | None = Field(default=None, max_length=20)
    metadata: dict[str, Any] | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=200)


T = TypeVar("T")


class DataList(Out, Generic[T]):
    """``{data: [...]}``: the list shape of Sayso's own (non-Placet) collections."""

    data: list[T]


class MessagePage(Out):
    data: list[MessageView]
    next_cursor: str | None = None


class IterationsOut(Out):
    group_id: str
    iterations: list[MessageView]


# A remembered approval stands for 60 s to 7 days (sayso_api.remembered).
REMEMBER_MIN_SECONDS = 60
REMEMBER_MAX_SECONDS = 7 * 86_400


class RememberIn(_StrictIn):
    for_seconds: int = Field(
        ge=REMEMBER_MIN_SECONDS,
        le=REMEMBER_MAX_SECONDS,
        description="How long the approval stands: 60 s to 7 days",
    )
    scope: Literal["channel", "run"] = Field(
        description="channel: any run of this channel; run: only messages with the same metadata.runId"
    )
    run_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="scope run: the run (default: the message's metadata.runId, which it must equal)",
    )


class RespondIn(_In):
    response: dict[str, Any] = Field(
        description="Answer shaped by the review type (see the review types table)"
    )
    feedback: str | None = Field(default=None, max_length=4000, description="What the human wants changed")
    modified_file_ids: dict[str, str] | None = Field(
        default=None, max_length=20, description="Original attachment id -> id of the human's edited file"
    )
    remember: RememberIn | None = Field(
        default=None,
        description="Approve the same action (channel, metadata.tool, metadata.args) for a while: "
        "an approving answer to a review whose message has metadata.tool",
    )


class DeletedOut(Out):
    deleted: bool = True


class AckOut(Out):
    acknowledged: bool = True


def check_schedule(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("at most 20 retries")
    if any(v < 1 or v > 7 * 86400 for v in value):
        raise ValueError("each delay must be between 1 second and 7 days")
    return value


class WebhookAuthIn(_In):
    """HTTP Basic credentials sent on the agent's webhook deliveries (stored encrypted)."""

    username: str = Field(min_length=1, max_length=200, pattern=r"^[^:\x00-\x1f\x7f]*$")
    password: str = Field(max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")


class CommandIn(_In):
    command: str = Field(min_length=1, max_length=64)
    description: str = Field(max_length=500)
    accepts_args: bool | None = None
    arg_hint: str | None = Field(default=None, max_length=200)


class CommandsIn(_In):
    commands: list[CommandIn] = Field(max_length=100)


class SetWebhookIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    url: str
    headers: Headers | None = None
    auth: WebhookAuthIn | None = None

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class DeleteWebhookIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)


Tag = Field(default=None, max_length=64)


class AgentIn(_In):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    avatar_url: str | None = None
    tag: str | None = Tag
    webhook_url: str | None = None
    webhook_headers: Headers | None = None
    webhook_auth: WebhookAuthIn | None = None
    webhook_format: WebhookFormat = Field(
        default="placet", description="Webhook body: placet, or processa (draft.approved / draft.rejected)"
    )
    webhook_events: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),
        description="Events POSTed to the default webhook URL; add message:created for human messages",
    )
    webhook_retry_schedule: list[int] | None = Field(
        default=None, description="Seconds to wait before each retry (e.g. [60, 300, 900] = 3 retries)"
    )

    _schedule = field_validator("webhook_retry_schedule")(check_schedule)

    _url = field_validator("webhook_url", "avatar_url")(check_url)
    _headers = field_validator("webhook_headers")(check_headers)


class AgentPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    avatar_url: str | None = None
    tag: str | None = Tag
    webhook_url: str | None = None
    webhook_headers: Headers | None = None
    webhook_auth: WebhookAuthIn | None = None
    webhook_format: WebhookFormat | None = None
    webhook_enabled: bool | None = Field(
        default=None, description="Set true to re-enable a default URL disabled by a 410 answer"
    )
    webhook_events: list[WebhookEvent] | None = None
    webhook_retry_schedule: list[int] | None = None

    _schedule = field_validator("webhook_retry_schedule")(check_schedule)

    _url = field_validator("webhook_url", "avatar_url")(check_url)
    _headers = field_validator("webhook_headers")(check_headers)


class CommandOut(Out):
    command: str
    description: str
    accepts_args: bool | None = None
    arg_hint: str | None = None


class AgentOut(Out):
    id: str
    owner_id: str
    name: str
    description: str | None = None
    avatar_url: str | None = None
    tag: str | None = None
    commands: list[CommandOut] = Field(default_factory=list)
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(
        default_factory=dict, description="Header names; values are stored encrypted and never returned"
    )
    webhook_auth: dict[str, str] | None = Field(
        default=None, description="{username, password: '***'}; the password is stored encrypted"
    )
    webhook_format: WebhookFormat = "placet"
    webhook_enabled: bool = True
    webhook_disabled_reason: str | None = None
    webhook_events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    webhook_retry_schedule: list[int] | None = None
    status: AgentStatus = DEFAULT_AGENT_STATUS
    status_message: str | None = None
    status_since: datetime | None = None
    last_active_at: datetime | None = None
    last_activity_at: datetime | None = Field(default=None, description="Alias of lastActiveAt")
    created_at: datetime
    role: Literal["owner", "member"] = Field(
        default="owner",
        description="member: the channel was shared with you; its webhook settings are not shown",
    )


class AgentCreated(AgentOut):
    webhook_secret: str = Field(description="Signing secret (whsec_…); shown only in this response")


class PingIn(_In):
    agent_id: str = Field(min_length=1, max_length=100)
    status: AgentStatus
    message: str | None = Field(default=None, max_length=1000)


class LoginIn(_StrictIn):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(Out):
    id: str
    email: str
    is_admin: bool = False
    created_at: datetime


class LoginOut(Out):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    user: UserOut


class UserIn(_StrictIn):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=1024)
    is_admin: bool = False


class ApiKeyIn(_StrictIn):
    label: str = Field(min_length=1, max_length=100)


class ApiKeyOut(Out):
    id: str
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key; shown only in this response")


class ScopedTokenIn(_StrictIn):
    channel_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=MAX_TOKEN_CHANNELS
    )
    expires_in_seconds: int = Field(ge=60, le=MAX_TOKEN_SECONDS)
    answer: bool = False
    name: str | None = Field(default=None, min_length=1, max_length=64)


class ScopedTokenOut(Out):
    id: str
    prefix: str
    name: str | None = None
    channel_ids: list[str]
    answer: bool
    created_at: datetime
    expires_at: datetime


class ScopedTokenCreated(ScopedTokenOut):
    token: str = Field(description="The scoped token; shown only in this response")


class InboundWebhookOut(Out):
    id: str
    channel_id: str
    name: str
    avatar_url: str | None = None
    active: bool
    created_at: datetime
    last_used_at: datetime | None = None


class InboundWebhookCreated(InboundWebhookOut):
    token: str = Field(description="Shown only in this response; stored as SHA-256")
    url: str = Field(description="POST {content, username?, avatar_url?} here")


class TriggerOut(Out):
    id: str
    channel_id: str
    name: str
    url: str
    mapping: dict[str, Any]
    required: list[str]
    allow_ips: list[str]
    active: bool
    created_at: datetime
    last_used_at: datetime | None = None


class TriggerCreated(TriggerOut):
    secret: str = Field(description="Signing secret (whsec_…); shown only in this response")


class TriggerFired(Out):
    correlation_id: str | None
    message_id: str
    replayed: bool


class MemberIn(_StrictIn):
    email: str = Field(min_length=3, max_length=320, description="An existing user's e-mail")


class MemberOut(Out):
    user_id: str
    email: str
    added_at: datetime
