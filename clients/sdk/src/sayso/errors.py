"""Typed exceptions for the API's one error shape, ``{"error": {"code", "message", "field"}}``.

Catch :class:`SaysoError` for everything the SDK raises; the subclasses say what happened:

==========================  =======================================================
:class:`ValidationError`    422: the body did not fit; ``.field`` names the culprit
:class:`NotFound`           404: missing, or another owner's (never confirmed)
:class:`Conflict`           409: state conflict (already answered, stream closed …)
:class:`Throttled`          429 after the automatic retries; ``.retry_after``
:class:`Unavailable`        503 after the automatic retries; ``.retry_after``
:class:`Expired`            the review expired before anyone answered
:class:`WaitTimeout`        ``wait(timeout=…)`` ran out; the review is still pending
==========================  =======================================================
"""

# The exception names are the SDK's public vocabulary (NotFound, Conflict, Expired, Denied …),
# as the HTTP statuses and review outcomes are called, not FooError.
# ruff: noqa: N818

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sayso.numerals import ascii_digits, parse_uint

if TYPE_CHECKING:
    import httpx

    from sayso.models import Message


class SaysoError(Exception):
    """Base class of every exception the SDK raises."""


class ConfigurationError(SaysoError):
    """The client is missing its URL or key (arguments or ``SAYSO_URL``/``SAYSO_API_KEY``)."""


class TransportError(SaysoError):
    """The server could not be reached (connection refused, reset, timed out) after retries."""


class ApiError(SaysoError):
    """A non-2xx answer. ``status``, ``code``, ``message`` and ``field`` come from the body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.body = body


class BadRequest(ApiError):
    """400 (as Placet answers them): ``iterationOf`` naming a review that is still open, deleting
    a member of an iteration chain with other messages."""


class Unauthorized(ApiError):
    """401: no key, an unknown key or a revoked one."""


class Forbidden(ApiError):
    """403."""


class NotFound(ApiError):
    """404: missing, or owned by someone else (Sayso never confirms other owners' ids)."""


class Conflict(ApiError):
    """409: already answered or expired, a closed stream, an idempotency key reused with a
    different body."""


class PayloadTooLarge(ApiError):
    """413: the body or one of its fields is over its limit."""


class ValidationError(ApiError):
    """422: ``field`` names the part of the request at fault (e.g. ``review.payload.options``)."""


class Throttled(ApiError):
    """429, still refused after the automatic retries (or asked to wait longer than allowed)."""


class Unavailable(ApiError):
    """503: the server's database is unreachable; ``retry_after`` says when to try again."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: Throttled,
    503: Unavailable,
}


# Retry-After beyond this many digits is "very long": read as 2^31 s, as RFC 9111 caps an
# overflowing delta-seconds (longer than the SDK ever waits either way).
RETRY_AFTER_DIGITS = 10
RETRY_AFTER_CAP = float(2**31)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (ASCII delta-seconds); the HTTP-date form is not used by Sayso
    and, like anything else unreadable (``nan``, ``²``, ``-1``), reads as None."""
    text = (value or "").strip(" \t")
    if len(text) > RETRY_AFTER_DIGITS and ascii_digits(text):
        return RETRY_AFTER_CAP
    seconds = parse_uint(text, RETRY_AFTER_DIGITS)
    return None if seconds is None else float(seconds)


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed exception for a non-2xx response, read from the standard error body (or, for a
    proxy's or a foreign server's answer, from whatever text it sent)."""
    body: Any
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    code, message, field = "error", response.reason_phrase or "error", None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        field = err.get("field") if isinstance(err.get("field"), str) else None
    elif isinstance(body, dict) and "message" in body:  # Placet's {statusCode, message}
        message = str(body["message"])
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    cls = _BY_STATUS.get(response.status_code, ApiError)
    return cls(
        response.status_code,
        code,
        message,
        field,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
        body=body,
    )


class Expired(SaysoError):
    """The review expired before anyone answered. ``message`` is the expired message."""

    def __init__(self, message: Message) -> None:
        super().__init__(f"review {message.id} expired without an answer")
        self.message = message


class WaitTimeout(SaysoError, TimeoutError):
    """``wait(..., timeout=…)`` ran out while the review was still pending; wait again to go on."""

    def __init__(self, message_id: str, timeout: float) -> None:
        super().__init__(f"review {message_id} still pending after {timeout:g}s")
        self.message_id = message_id
        self.timeout = timeout


class WebhookVerificationError(SaysoError):
    """A webhook whose signature, timestamp or headers do not check out. ``reason`` is one of
    ``missing_headers``, ``invalid_timestamp``, ``timestamp_out_of_range``,
    ``invalid_signature``, ``invalid_secret``, ``invalid_json``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
