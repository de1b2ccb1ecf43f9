"""The two ways out: SMTP (aiosmtplib) and Slack incoming webhooks / ``response_url`` (aiohttp,
through the SSRF guard the dispatcher uses). Each turns a send into a :class:`Sent` with an
outcome, never an exception, and never records a URL, an address's credentials or a password."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

import aiohttp
import aiosmtplib

from sayso_common import attempts
from sayso_common.attempts import ErrorKind
from sayso_common.clock import utcnow
from sayso_common.deliveries import host_key
from sayso_common.resolver import GuardedResolver
from sayso_common.ssrf import AddressRefusedError, check_url
from sayso_notifier.settings import NotifierSettings, SmtpServer

Result = Literal["sent", "retry", "failed"]
# What a verdict makes of a notification (410 from Slack, an archived channel: failed).
RESULTS: dict[attempts.Verdict, Result] = {
    attempts.Verdict.DELIVERED: "sent",
    attempts.Verdict.RETRY: "retry",
    attempts.Verdict.FAIL: "failed",
    attempts.Verdict.GONE: "failed",
}


@dataclass(frozen=True)
class Sent:
    verdict: Result
    duration_ms: float
    error_kind: ErrorKind | None = None
    error: str | None = None
    retry_after: float | None = None


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _mail(started: float, kind: ErrorKind, error: str, code: int | None = None) -> Sent:
    return Sent(RESULTS[attempts.mail_verdict(kind, code)], _since(started), kind, error)


def unsent(kind: ErrorKind, error: str) -> Sent:
    """A notification that could not be sent at all (no address, say)."""
    return _mail(time.perf_counter(), kind, error)


def _posted(
    started: float, status: int | None, kind: ErrorKind, error: str, retry_after: float | None = None
) -> Sent:
    return Sent(RESULTS[attempts.verdict(status, kind)], _since(started), kind, error, retry_after)


class Mailer:
    def __init__(self, settings: NotifierSettings) -> None:
        self.server: SmtpServer | None = settings.smtp_server()
        self._from = settings.smtp_from
        self._timeout = settings.smtp_timeout_seconds

    @property
    def ready(self) -> bool:
        return self.server is not None

    def message(self, to: str, subject: str, text: str, page: str, message_id: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._from
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = formatdate(localtime=False)
        # The same id on every attempt of one notification: a client that receives a retried
        # copy (at-least-once) can tell it is the same mail.
        mail["Message-ID"] = f"<{message_id}@sayso>"
        # Auto-replies (out of office) have nowhere useful to go.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(text)
        mail.add_alternative(page, subtype="html")
        return mail

    async def send(self, mail: EmailMessage) -> Sent:
        server = self.server
        started = time.perf_counter()
        if server is None:
            return _mail(started, ErrorKind.NOT_CONFIGURED, "e-mail is not configured (SAYSO_SMTP_URL)")
        try:
            await aiosmtplib.send(
                mail,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.tls == "implicit",
                # False, not None (opportunistic): plain smtp:// stays plain, STARTTLS only when asked for.
                start_tls=server.tls == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            # Failed only when every refusal is permanent (the lowest code is a 5yz).
            return _mail(
                started,
                ErrorKind.RECIPIENT_REFUSED,
                f"the server refused the recipient ({codes})",
                min(codes, default=None),
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            # No code passed: a configuration error is retried whatever the server's reply.
            return _mail(started, ErrorKind.SMTP_AUTH, f"SMTP authentication failed ({exc.code})")
        except aiosmtplib.SMTPResponseException as exc:
            return _mail(started, ErrorKind.SMTP_STATUS, f"SMTP {exc.code}: {exc.message}"[:300], exc.code)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return _mail(started, ErrorKind.TIMEOUT, "the mail server did not answer in time")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _mail(started, ErrorKind.CONNECT, f"{type(exc).__name__}: {exc}"[:300])
        return Sent("sent", _since(started))


# Named in an address refusal: the one setting that lifts it.
ALLOW_LIST_SETTING = "SAYSO_NOTIFIER_ALLOWED_NETWORKS"


class Slack:
    """Posts to Slack: incoming webhooks and interaction ``response_url``s. Both are URLs a user
    gave (or Slack did, in a request anyone could forge without the signing secret), so they pass
    the SSRF guard: checked before the request and at connect time, redirects never followed."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._allowed = tuple(settings.allowed_networks)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=GuardedResolver(self._allowed, setting=ALLOW_LIST_SETTING), limit=64
            ),
            timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        await self.session.close()

    async def post(self, url: str, message: dict[str, Any]) -> Sent:
        started = time.perf_counter()
        # Errors name the host only: the path of a Slack webhook URL is its secret.
        where = host_key(url)
        refused = check_url(url, self._allowed, ALLOW_LIST_SETTING)
        if refused:
            return _posted(started, None, ErrorKind.SSRF, f"refused by the SSRF guard: {refused}")
        try:
            async with self.session.post(
                url,
                data=json.dumps(message).encode(),
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as resp:
                answer = (await resp.content.read(300)).decode("utf-8", "replace").strip()
                status = resp.status
                header = resp.headers.get("Retry-After")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failed = attempts.error_kind(exc)
            return _posted(started, None, failed, _describe(failed, exc, where))
        kind = attempts.answer_kind(status)
        if kind is None:
            return Sent("sent", _since(started))
        # 400 invalid_payload, 403, 404 no_service, 410 channel_is_archived fail; 408, 429, 5xx retry.
        error = f"{where} answered HTTP {status}" + (f": {answer[:100]}" if answer else "")
        return _posted(started, status, kind, error, attempts.retry_after(status, header, utcnow()))


def _describe(kind: ErrorKind, exc: Exception, where: str) -> str:
    """An error naming the host only: the path of a Slack webhook URL is its secret, and an
    exception's text may hold the whole URL."""
    if kind is ErrorKind.TIMEOUT:
        return f"{where} did not answer in time"
    if kind is ErrorKind.SSRF and isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.reason if isinstance(exc.os_error, AddressRefusedError) else "?"
        return f"refused by the SSRF guard: {reason}"
    if kind is ErrorKind.TLS:
        return f"TLS failed talking to {where}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}"
    return f"{type(exc).__name__} talking to {where}"
