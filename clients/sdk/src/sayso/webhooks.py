"""Checking the webhooks Sayso sends (Standard Webhooks, https://www.standardwebhooks.com).

Each delivery carries ``webhook-id`` (the event id: the same on every retry, so dedupe on it),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: space-separated
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw body}">``, keyed with the base64 part of the
agent's ``whsec_…`` secret. During a secret rotation Sayso signs with both secrets; pass both
(or either) to :func:`verify_webhook`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sayso.errors import WebhookVerificationError
from sayso.numerals import parse_uint

# How far a timestamp may be from now, either way (seconds).
TOLERANCE_SECONDS = 300
# Unix seconds; more digits are not a time (and would overflow against time.time()).
TIMESTAMP_DIGITS = 12


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("invalid_secret", "the secret is not whsec_<base64>") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,…`` signature, as Sayso computes it (for tests and for senders)."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


Headers = Mapping[str, str] | Iterable[tuple[str, str | bytes]]


def _lowered(headers: Headers) -> dict[str, str]:
    """Header names in lower case: from a mapping (HTTP), or from (name, value) pairs with
    ``bytes`` values, as a Kafka record's ``headers`` are."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {
        name.lower(): value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for name, value in pairs
    }


def verify_webhook(
    body: bytes | str,
    headers: Headers,
    secret: str | Sequence[str],
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a delivery and return its JSON payload; raise :class:`WebhookVerificationError`
    (with ``.reason``) if it was forged, altered, replayed late or is missing its headers.

    ``body`` must be the raw bytes received (re-serialised JSON would not match). ``headers``
    may be any mapping (names are matched without regard to case), or a Kafka record's
    ``headers`` (pairs of name and bytes) for an endpoint whose destination is a topic.
    ``secret`` is the agent's (or the endpoint's) ``whsec_…`` secret, or a list of them during a
    rotation. A consumer that reads a topic's backlog passes a ``tolerance`` as long as the
    backlog may be old (records keep the timestamp of their send).
    """
    lowered = _lowered(headers)
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    offered = lowered.get("webhook-signature")
    if not msg_id or not stamp or not offered:
        raise WebhookVerificationError(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    timestamp = parse_uint(stamp, TIMESTAMP_DIGITS)
    if timestamp is None:
        raise WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not Unix seconds")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            "timestamp_out_of_range", f"webhook-timestamp is more than {tolerance:g}s from now"
        )
    raw = body.encode() if isinstance(body, str) else body
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise WebhookVerificationError("invalid_secret", "no secret given")
    candidates = [part for part in offered.split(" ") if part.startswith("v1,")]
    for key in secrets:
        expected = sign(key, msg_id, timestamp, raw).encode()
        # Bytes, not str: compare_digest refuses str with non-ASCII characters.
        if any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates):
            break
    else:
        raise WebhookVerificationError("invalid_signature", "no signature matches the secret")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WebhookVerificationError("invalid_json", "the signed body is not JSON") from None
