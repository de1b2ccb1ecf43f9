"""User-token (JWT) signing keys, with rotation.

The newest key signs and names itself in the token's ``kid`` header; every listed key still
verifies the tokens it signed. A key is rotated by putting a new one first in
``SAYSO_JWT_KEYS`` and dropping the old one once its tokens have expired. Independent of the
keys that seal stored secrets (``SAYSO_SECRET_KEYS``): rotating one never touches the other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import jwt

from sayso_common.legacy import KEY_LABEL

JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "sayso"


def key_id(secret: str) -> str:
    """A signing key's public name: a short hash, so tokens can say which key signed them
    without revealing anything about it."""
    return hashlib.sha256(KEY_LABEL + b"-jwt-kid:" + secret.encode()).hexdigest()[:16]


def derived_jwt_key(secret_key: str) -> str:
    """The signing key used when none is configured: derived from ``SAYSO_SECRET_KEY`` under a
    label of its own, so a token never carries anything keyed like the stored-secret box."""
    return hmac.new(secret_key.encode(), KEY_LABEL + b"/jwt-signing/v1", hashlib.sha256).hexdigest()


class JwtKeys:
    """User-token signing keys, newest first: the first signs, any of them verifies a token whose
    ``kid`` names it."""

    def __init__(self, secrets_newest_first: Sequence[str]) -> None:
        if not secrets_newest_first:
            raise ValueError("at least one JWT signing key is required")
        self._keys = {key_id(s): s for s in secrets_newest_first}
        self.current = key_id(secrets_newest_first[0])

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self._keys[self.current], algorithm=JWT_ALGORITHM, headers={"kid": self.current}
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired token signed by one of the keys; raises
        ``jwt.InvalidTokenError`` otherwise (a token naming no known key included)."""
        kid = jwt.get_unverified_header(token).get("kid")
        secret = self._keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise jwt.InvalidTokenError("signed by an unknown or retired key")
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            audience=JWT_AUDIENCE,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
        return claims
