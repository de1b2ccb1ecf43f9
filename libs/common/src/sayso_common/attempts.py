"""What one delivery attempt means: the one rule the dispatcher (webhooks), the notifier (Slack
and e-mail) and the API's operator page share. Pure functions over what an attempt recorded.

- **Kind**: why an attempt did not deliver (:class:`ErrorKind`, the stable strings stored on
  attempts and shown by the API); an HTTP answer's class is :class:`StatusClass`.
- **Verdict**: delivered, retried while the schedule lasts, failed for good, or gone (410).
- **Circuit**: whether the attempt tells a circuit breaker the receiver is up, down, or nothing.
- **When next**: ``Retry-After`` (read by :mod:`sayso_common.numerals`), the schedule (an agent's
  own or the service's), jitter, and the cap on what a receiver may ask for.

The breaker counts what says the receiver cannot take requests now: no answer (timeout,
connection or TLS failure), a 5xx, 408 or 429. Any other answer - 2xx, a redirect, 400, 401,
404, 410 - comes from a receiver that is up and decided about *this* request: a refusal is
not retried, so parking the host's other deliveries behind an open circuit would save it no
load, and would hold back deliveries it might accept (another agent's path, a fixed payload).
Attempts that never reached the receiver (refused by the SSRF guard, an unusable URL or
request, our own error) say nothing about it and are not counted at all.
"""

from __future__ import annotations

import enum
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sayso_common import numerals


class ErrorKind(enum.StrEnum):
    """Why an attempt did not deliver. Stored on attempts; the API shows them as they are."""

    TIMEOUT = "timeout"  # no complete answer in time
    CONNECT = "connect_error"  # no connection, or it broke before the answer
    TLS = "tls_error"  # the TLS handshake failed (certificate, protocol)
    SSRF = "ssrf_refused"  # the address is not one we send to
    REDIRECT = "redirect_not_followed"  # a 3xx answer (never followed: the next hop could be inside)
    HTTP = "http_status"  # any other answer but 2xx
    INVALID_URL = "invalid_url"
    INVALID_REQUEST = "invalid_request"  # the request could not be built (a header refused)
    INTERNAL = "internal_error"  # our side failed around the attempt
    # E-mail and notification setup.
    NOT_CONFIGURED = "not_configured"
    NO_ADDRESS = "no_address"
    RECIPIENT_REFUSED = "recipient_refused"
    SMTP_AUTH = "smtp_auth"
    SMTP_STATUS = "smtp_status"


# What a webhook attempt can record (the others are e-mail's).
WEBHOOK_KINDS = (
    ErrorKind.TIMEOUT,
    ErrorKind.CONNECT,
    ErrorKind.TLS,
    ErrorKind.SSRF,
    ErrorKind.REDIRECT,
    ErrorKind.HTTP,
    ErrorKind.INVALID_URL,
    ErrorKind.INVALID_REQUEST,
    ErrorKind.INTERNAL,
)


class StatusClass(enum.StrEnum):
    """RFC 9110's classes of an HTTP status code."""

    INFORMATIONAL = "1xx"
    SUCCESSFUL = "2xx"
    REDIRECTION = "3xx"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"

    @classmethod
    def of(cls, status: int) -> StatusClass:
        """The class of ``status``; a code past 599 reads as a server error, one below 200 as
        informational (neither is a success)."""
        if status < 200:
            return cls.INFORMATIONAL
        if status < 300:
            return cls.SUCCESSFUL
        if status < 400:
            return cls.REDIRECTION
        if status < 500:
            return cls.CLIENT_ERROR
        return cls.SERVER_ERROR


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again later, while the schedule lasts
    FAIL = "fail"  # no retry: refused for good, or never sendable
    GONE = "gone"  # 410: fail, and the URL is not worth sending to again


# Answers that ask to be tried later: 408 Request Timeout, 429 Too Many Requests.
RETRY_STATUSES = frozenset({408, 429})
GONE_STATUS = 410
# The receiver was tried and did not answer: one may come later, and a breaker counts these.
UNANSWERED_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECT, ErrorKind.TLS})
# Retried without an answer besides: our own error (ours to fix: a retry after the fix, a lost
# key restored, delivers) and a refused SMTP login (fixing the credentials lets retries through).
RETRYABLE_KINDS = UNANSWERED_KINDS | {ErrorKind.INTERNAL, ErrorKind.SMTP_AUTH}


def verdict(status: int | None, kind: str | None) -> Verdict:
    """2xx (or, without a status, no error: a Kafka topic acknowledged) delivered; 408, 429, 5xx, timeouts, connection and TLS failures retried; 410 gone;
    every other answer (a 4xx, a redirect) and an attempt that could not be made (refused by
    the SSRF guard, an invalid URL or request) fails at once."""
    # Plain comparisons (StatusClass.of's ranges): this runs for every attempt on the hot path.
    if status is None:
        if kind is None:
            # Neither an answer nor an error: a destination without statuses took it (a Kafka
            # topic acknowledged the record), as an e-mail without an error (mail_verdict).
            return Verdict.DELIVERED
        return Verdict.RETRY if kind in RETRYABLE_KINDS else Verdict.FAIL
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == GONE_STATUS:
        return Verdict.GONE
    if status in RETRY_STATUSES or status >= 500:
        return Verdict.RETRY
    return Verdict.FAIL


def circuit_result(status: int | None, kind: str | None) -> bool | None:
    """What the attempt tells a circuit breaker: True (the receiver is up: it answered, and not
    with overload or failure), False (it is not taking requests: no answer, a 5xx, 408 or 429),
    None (it was never reached, or we cannot tell: not counted). The module's docstring says
    why a refusal such as 400 counts as up."""
    if status is None:
        if kind is None:
            return True  # a Kafka destination acknowledged the record: it is up
        return False if kind in UNANSWERED_KINDS else None
    return verdict(status, kind) is not Verdict.RETRY


def answer_kind(status: int) -> ErrorKind | None:
    """The kind an HTTP answer is recorded with: none for 2xx."""
    klass = StatusClass.of(status)
    if klass is StatusClass.SUCCESSFUL:
        return None
    return ErrorKind.REDIRECT if klass is StatusClass.REDIRECTION else ErrorKind.HTTP


def retry_after(status: int, header: str | None, now: datetime) -> float | None:
    """Seconds an answer asks to wait before the next try: its ``Retry-After`` (delta-seconds
    in ASCII digits, or an HTTP-date; sayso_common.numerals reads it) when the answer is one
    that is retried; None otherwise, or when the header is absent or unreadable. Uncapped: the
    cap is the retry policy's (:func:`next_delay`)."""
    if verdict(status, answer_kind(status)) is not Verdict.RETRY:
        return None
    return numerals.retry_after_seconds(header, now)


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of an exception raised by one aiohttp request (or while preparing it)."""
    # Imported here: only a process that sends requests needs aiohttp, and it has it loaded by
    # now. The API and the expirer read this module's kinds and schedules, and never send.
    import aiohttp

    from sayso_common.ssrf import AddressRefusedError

    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefusedError):
        return ErrorKind.SSRF
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch | ssl.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorKind.INVALID_URL
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ErrorKind.CONNECT
    if isinstance(exc, ValueError | TypeError):
        # The request cannot be built (aiohttp refuses a header, say): trying again will not help.
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.INTERNAL


def mail_verdict(kind: ErrorKind | None, code: int | None = None) -> Verdict:
    """An e-mail send: delivered without a kind; with the SMTP reply ``code`` that refused it,
    a permanent one (5yz) fails and a transient one (4yz) is retried; otherwise as
    :func:`verdict` without a status (timeouts, connection errors and a failed login retried, so
    fixing the server or its credentials lets the retries through)."""
    if kind is None:
        return Verdict.DELIVERED
    if code is not None:
        return Verdict.FAIL if code >= 500 else Verdict.RETRY
    return verdict(None, kind)


# --- when the next attempt is due -----------------------------------------------------------

# The most a Retry-After may delay a retry unless a service sets its own cap.
RETRY_AFTER_MAX = 3600.0


# DESIGN.md's webhook retries: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (each ±20 % jitter) —
# the dispatcher's default schedule, and what a deleted channel's kept settings must outlast.
WEBHOOK_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True)
class RetryPolicy:
    jitter: float = 0.2  # each scheduled wait is spread by this fraction either way
    retry_after_max: float = RETRY_AFTER_MAX


def schedule_for(own: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    """The waits before each retry: an agent's own schedule when it has one (an empty one means
    no retries), else the service's."""
    return list(own if own is not None else default)


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    """``delay`` ±``jitter`` (a fraction), so receivers recovering from an outage are not hit
    by every retry at the same instant."""
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1 + spread))


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    retry_after: float | None,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones, or None when the
    schedule is spent. ``schedule[i]`` is the wait before retry ``i + 1``. A Retry-After longer
    than the scheduled wait is honoured, up to ``policy.retry_after_max``."""
    index = attempts_made - 1
    if index < 0 or index >= len(schedule):
        return None
    delay = jittered(float(schedule[index]), policy.jitter, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return delay
