"""Request and response bodies. Field names follow Placet's Agent API v1 (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from signoff_common.views import MessageStatus, MessageView, ReviewType


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Out(BaseModel):
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


def check_headers(value: Headers | None) -> Headers | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("at most 20 headers")
    for name, val in value.items():
        if not name or len(name) > 100 or not all(33 <= ord(c) < 127 and c != ":" for c in name):
            raise ValueError(f"invalid header name {name!r}")
        if len(val) > 4096 or any(c in val for c in "\r\n\0"):
            raise ValueError(f"invalid value for header {name!r}")
    return value


class CallbackIn(_In):
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: Headers | None = None

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class ReviewIn(_In):
    type: ReviewType
    payload: dict[str, Any] = Field(default_factory=dict)
    expires_in_seconds: int | None = Field(default=None, ge=1)
    expires_at: datetime | None = None
    callback: CallbackIn | None = None

    @model_validator(mode="after")
    def _one_deadline(self) -> ReviewIn:
        if self.expires_in_seconds is not None and self.expires_at is not None:
            raise ValueError("give expiresInSeconds or expiresAt, not both")
        return self


class MessageIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1)
    status: MessageStatus = "info"
    review: ReviewIn | None = None
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    iteration_of: str | None = Field(default=None, min_length=1, max_length=100)
    client_id: str | None = Field(default=None, min_length=1, max_length=200)

    _url = field_validator("webhook_url")(check_url)


class UserMessageIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class MessagePage(_Out):
    data: list[MessageView]
    next_cursor: str | None = None


class IterationsOut(_Out):
    group_id: str
    iterations: list[MessageView]


class RespondIn(_In):
    response: Any = Field(description="Answer shaped by the review type (see the review types table)")


class AckOut(_Out):
    acknowledged: bool = True


AgentStatus = Literal["active", "busy", "error", "offline"]
WebhookEvent = Literal["review:responded", "review:expired", "message:created"]
DEFAULT_WEBHOOK_EVENTS: list[WebhookEvent] = ["review:responded", "review:expired"]


def check_schedule(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("at most 20 retries")
    if any(v < 1 or v > 7 * 86400 for v in value):
        raise ValueError("each delay must be between 1 second and 7 days")
    return value


class AgentIn(_In):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    webhook_url: str | None = None
    webhook_headers: Headers | None = None
    webhook_events: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),
        description="Events POSTed to the default webhook URL; add message:created for human messages",
    )
    webhook_retry_schedule: list[int] | None = Field(
        default=None, description="Seconds to wait before each retry (e.g. [60, 300, 900] = 3 retries)"
    )

    _schedule = field_validator("webhook_retry_schedule")(check_schedule)

    _url = field_validator("webhook_url")(check_url)
    _headers = field_validator("webhook_headers")(check_headers)


class AgentPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    webhook_url: str | None = None
    webhook_headers: Headers | None = None
    webhook_enabled: bool | None = Field(
        default=None, description="Set true to re-enable a default URL disabled by a 410 answer"
    )
    webhook_events: list[WebhookEvent] | None = None
    webhook_retry_schedule: list[int] | None = None

    _schedule = field_validator("webhook_retry_schedule")(check_schedule)

    _url = field_validator("webhook_url")(check_url)
    _headers = field_validator("webhook_headers")(check_headers)


class AgentOut(_Out):
    id: str
    name: str
    description: str | None = None
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(
        default_factory=dict, description="Header names; values are stored encrypted and never returned"
    )
    webhook_enabled: bool = True
    webhook_disabled_reason: str | None = None
    webhook_events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    webhook_retry_schedule: list[int] | None = None
    status: AgentStatus | None = None
    status_message: str | None = None
    last_activity_at: datetime | None = None
    created_at: datetime


class AgentCreated(AgentOut):
    webhook_secret: str = Field(description="Signing secret (whsec_…); shown only in this response")


class PingIn(_In):
    agent_id: str = Field(min_length=1, max_length=100)
    status: AgentStatus
    message: str | None = Field(default=None, max_length=1000)


class LoginIn(_In):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(_Out):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    user: dict[str, Any]


class UserIn(_In):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=1024)
    is_admin: bool = False


class ApiKeyIn(_In):
    label: str = Field(min_length=1, max_length=100)


class ApiKeyOut(_Out):
    id: str
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key; shown only in this response")
