"""One-click answer links (e-mail) and answer buttons (Slack): a signed token naming the
notification it was sent in, the review, the recipient it answers as and the option it picks.

The notifier signs, the API verifies; both derive the key from ``SAYSO_SECRET_KEY`` under a
label of their own, so a token never carries anything keyed like a JWT, a file URL or the
stored-secret box. A token expires with its review and is used once: the API marks the
notification it names as used (``notifications.link_used``) before answering.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from sayso_common.legacy import KEY_LABEL

# Long enough for any real token (ids, an option id of at most 100 characters), short enough that
# nothing oversized is ever decoded.
MAX_TOKEN = 1000


class LinkError(ValueError):
    """A token that is malformed, forged or expired; ``code`` is what the API answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AnswerLink:
    notification_id: str
    message_id: str
    responder_id: str  # the user the answer is recorded as
    option: str  # an approval option's id, or a single selection's item id
    expires: int  # unix seconds: the review's deadline

    def expired(self, now: datetime) -> bool:
        return self.expires <= now.timestamp()


def link_key(secret_key: str) -> bytes:
    """The answer-link key, derived from the secret key (never the key itself)."""
    return hmac.new(secret_key.encode(), KEY_LABEL + b"/answer-links/v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def sign(key: bytes, link: AnswerLink) -> str:
    """``<base64url JSON>.<base64url HMAC-SHA256>``: URL-safe as it is."""
    fields = [link.notification_id, link.message_id, link.responder_id, link.option, link.expires]
    body = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return f"{body}.{_mac(key, body)}"


def verify(key: bytes, token: str, now: datetime) -> AnswerLink:
    """The link a genuine, unexpired token stands for; :class:`LinkError` otherwise. The MAC is
    checked (in constant time) before anything in the token is decoded."""
    body, dot, mac = token.partition(".")
    if not dot or not body or not mac or len(token) > MAX_TOKEN:
        raise LinkError("invalid_link", "this link is malformed")
    if not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        raise LinkError("invalid_link", "this link's signature does not match")
    try:
        n, m, r, o, x = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise LinkError("invalid_link", "this link is malformed") from None
    if not all(isinstance(v, str) for v in (n, m, r, o)) or not isinstance(x, int):
        raise LinkError("invalid_link", "this link is malformed")
    link = AnswerLink(n, m, r, o, x)
    if link.expired(now):
        raise LinkError("link_expired", "this review's deadline has passed")
    return link
