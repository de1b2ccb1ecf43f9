"""Notifier settings. Notifier-only settings carry the ``notifier_`` prefix
(``SAYSO_NOTIFIER_…``); the mail server's are ``SAYSO_SMTP_…``; ``SAYSO_PUBLIC_URL`` is the
API's, which answer links point at."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from sayso_common.settings import ServiceSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Retries of a notice that could not be sent: 30 s, 2 min, 10 min, 30 min, 1 h (each ±20 %).
DEFAULT_SCHEDULE = (30, 120, 600, 1800, 3600)


@dataclass(frozen=True)
class SmtpServer:
    """Where and how mail is sent, read from ``SAYSO_SMTP_URL``."""

    host: str
    port: int
    tls: Literal["none", "starttls", "implicit"]
    username: str | None
    password: str | None


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class NotifierSettings(ServiceSettings):
    http_port: int = 8105
    # The origin people open answer links on (the edge); the same variable the API reads.
    public_url: str = "http://127.0.0.1:8000"
    # smtp://host:port, smtps://user:pass@host:465 (TLS from the first byte). Unset: e-mail is
    # not configured, and each e-mail notification is recorded as skipped with that reason.
    smtp_url: SecretStr | None = None
    smtp_from: str = "Sayso <sayso@localhost>"
    # Upgrade smtp:// with STARTTLS, and refuse to go on without it.
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Kafka consumer group: every notifier replica in one group splits the partitions.
    notifier_group_id: str = "sayso-notifier"
    notifier_session_timeout_ms: int = Field(default=10_000, ge=1000)
    notifier_start_timeout_seconds: float = Field(default=30.0, gt=0)
    notifier_max_poll_records: int = Field(default=200, ge=1)
    # Slack requests: whole-request timeout; notices sent at once per process.
    notifier_timeout_seconds: float = Field(default=10.0, gt=0)
    notifier_concurrency: int = Field(default=32, ge=1)
    # A claimed notification belongs to this process for this long; a notifier killed mid-send
    # loses it to the next sweep of any replica once it lapses. Must outlast one send.
    notifier_lease_seconds: float = Field(default=60.0, gt=0)
    notifier_retry_schedule: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE)
    )
    notifier_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # SSRF guard allow-list for Slack URLs (CIDRs); empty in production.
    notifier_allowed_networks: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    # Longest the sweep sleeps when nothing tells it of earlier work.
    notifier_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    notifier_attempts_kept: int = Field(default=10, ge=1)

    _schedule = field_validator("notifier_retry_schedule", mode="before")(_split)
    _networks = field_validator("notifier_allowed_networks", mode="before")(_split)

    @field_validator("notifier_retry_schedule")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("retry delays must be zero or more seconds")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotifierSettings:
        if self.notifier_lease_seconds <= max(self.notifier_timeout_seconds, self.smtp_timeout_seconds):
            raise ValueError(
                "notifier_lease_seconds must exceed notifier_timeout_seconds and smtp_timeout_seconds"
            )
        self.smtp_server()  # a bad SAYSO_SMTP_URL fails start-up, not the first e-mail
        return self

    def smtp_server(self) -> SmtpServer | None:
        if self.smtp_url is None or not self.smtp_url.get_secret_value().strip():
            return None
        # The URL may hold a password: errors name the part at fault, never the value.
        parts = urlsplit(self.smtp_url.get_secret_value().strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SAYSO_SMTP_URL must start with smtp:// or smtps://")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SAYSO_SMTP_URL has an invalid port") from None
        if not parts.hostname:
            raise ValueError("SAYSO_SMTP_URL names no host")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "smtps":
            return SmtpServer(parts.hostname, port or 465, "implicit", username, password)
        if username and not self.smtp_starttls:
            raise ValueError(
                "SAYSO_SMTP_URL carries credentials over plain smtp://: use smtps:// or set "
                "SAYSO_SMTP_STARTTLS=true, so the password never crosses the network in clear"
            )
        return SmtpServer(
            parts.hostname, port or 25, "starttls" if self.smtp_starttls else "none", username, password
        )
