"""Standard Webhooks signatures (https://www.standardwebhooks.com): the one scheme Sayso uses
both to sign what it sends and to check what signed triggers receive.

``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC-SHA256>`` over
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed with the base64-decoded ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError("signing secret is not valid base64 after whsec_") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,…`` signature for ``body``."""
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """All signatures, one per valid secret (two during a rotation)."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)


def matches(secrets_: list[str], msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True if any ``v1`` signature in ``header`` was made with any of ``secrets_``."""
    offered = [part.strip() for part in header.split(" ") if part.strip().startswith("v1,")]
    for secret in secrets_:
        expected = signature(secret, msg_id, timestamp, body)
        # Compared as bytes: compare_digest refuses str with non-ASCII characters (a hostile
        # header must be a 401, not an exception).
        if any(hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")) for sig in offered):
            return True
    return False


# Headers that frame or route a request (hop-by-hop, RFC 9110 §7.6.1) or that the webhook itself
# sets (its body's type and length, the Standard Webhooks signature). The API refuses them in
# webhookHeaders; the dispatcher drops them from stored headers all the same.
RESERVED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "expect", "host", "content-length", "content-type",
        "content-encoding", "webhook-id", "webhook-timestamp", "webhook-signature",
    }
)  # fmt: skip
