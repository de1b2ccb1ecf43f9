"""Notifier settings. Notifier-only settings, and those it shares with the dispatcher
(:class:`sayso_service.leased_worker.LeasedWorkerSettings`), read ``SAYSO_NOTIFIER_…``; the mail
server's are ``SAYSO_SMTP_…``; ``SAYSO_PUBLIC_URL`` is the API's, which answer links point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from sayso_service.leased_worker import (
    AtLeastOne,
    LeasedWorkerSettings,
    PositiveSeconds,
    RetrySchedule,
    worker_settings,
)

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


class NotifierSettings(LeasedWorkerSettings):
    """The shared worker settings (:class:`LeasedWorkerSettings`) read as ``SAYSO_NOTIFIER_…``, with
    the notifier's own defaults, and the mail server's."""

    model_config = worker_settings("notifier")

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
    group_id: str = "sayso-notifier"
    max_poll_records: AtLeastOne = 200
    # Slack requests: whole-request timeout (the shared setting); notices sent at once per process.
    concurrency: AtLeastOne = 32
    # Must outlast one send (Slack's and SMTP's timeouts).
    lease_seconds: PositiveSeconds = 60.0
    retry_schedule: RetrySchedule = Field(default_factory=lambda: list(DEFAULT_SCHEDULE))
    attempts_kept: AtLeastOne = 10

    def request_timeouts(self) -> dict[str, float]:
        return {**super().request_timeouts(), "smtp_timeout_seconds": self.smtp_timeout_seconds}

    @model_validator(mode="after")
    def _consistent(self) -> NotifierSettings:
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
