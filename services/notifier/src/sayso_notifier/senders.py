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

from sayso_common import numerals
from sayso_common.clock import utcnow
from sayso_common.deliveries import host_key
from sayso_common.ssrf import AddressRefusedError, GuardedResolver, check_url
from sayso_notifier.settings import NotifierSettings, SmtpServer

Verdict = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class Sent:
    verdict: Verdict
    duration_ms: float
    error_kind: str | None = None
    error: str | None = None
    retry_after: float | None = None


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


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
            return Sent("failed", 0.0, "not_configured", "e-mail is not configured (SAYSO_SMTP_URL)")
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
            kind: Verdict = "failed" if all(c >= 500 for c in codes) else "retry"
            return Sent(
                kind, _since(started), "recipient_refused", f"the server refused the recipient ({codes})"
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A configuration error: retried, so fixing the credentials lets the retries through.
            return Sent("retry", _since(started), "smtp_auth", f"SMTP authentication failed ({exc.code})")
        except aiosmtplib.SMTPResponseException as exc:
            kind = "failed" if exc.code >= 500 else "retry"
            return Sent(kind, _since(started), "smtp_status", f"SMTP {exc.code}: {exc.message}"[:300])
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return Sent("retry", _since(started), "timeout", "the mail server did not answer in time")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Sent("retry", _since(started), "connect_error", f"{type(exc).__name__}: {exc}"[:300])
        return Sent("sent", _since(started))


# Named in an address refusal: the one setting that lifts it.
ALLOW_LIST_SETTING = "SAYSO_NOTIFIER_ALLOWED_NETWORKS"


class Slack:
    """Posts to Slack: incoming webhooks and interaction ``response_url``s. Both are URLs a user
    gave (or Slack did, in a request anyone could forge without the signing secret), so they pass
    the SSRF guard: checked before the request and at connect time, redirects never followed."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._allowed = tuple(settings.notifier_allowed_networks)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=GuardedResolver(self._allowed, setting=ALLOW_LIST_SETTING), limit=64
            ),
            timeout=aiohttp.ClientTimeout(total=settings.notifier_timeout_seconds),
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
            return Sent("failed", 0.0, "ssrf_refused", f"refused by the SSRF guard: {refused}")
        try:
            async with self.session.post(
                url,
                data=json.dumps(message).encode(),
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as resp:
                answer = (await resp.content.read(300)).decode("utf-8", "replace").strip()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            return Sent("retry", _since(started), "timeout", f"{where} did not answer in time")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                return Sent(
                    "failed",
                    _since(started),
                    "ssrf_refused",
                    f"refused by the SSRF guard: {exc.os_error.reason}",
                )
            return Sent("retry", _since(started), "connect_error", f"cannot connect to {where}")
        except (aiohttp.ClientError, OSError) as exc:
            return Sent("retry", _since(started), "connect_error", f"{type(exc).__name__} talking to {where}")
        except asyncio.CancelledError:
            raise
        if 200 <= status < 300:
            return Sent("sent", _since(started))
        error = f"{where} answered HTTP {status}" + (f": {answer[:100]}" if answer else "")
        if status == 429 or status >= 500:
            after = numerals.retry_after_seconds(retry_after, utcnow())
            return Sent("retry", _since(started), "http_status", error, after)
        # 400 invalid_payload, 403, 404 no_service, 410 channel_is_archived: retrying cannot help.
        return Sent("failed", _since(started), "http_status", error)
