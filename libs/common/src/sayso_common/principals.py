"""Who is calling: an agent with an API key, a human with a user JWT, or a page holding a scoped
read-only token (``sayso_common.scoped_tokens``). Each acts for one owner; a scoped token (and a
stream ticket, see ``sayso_realtime.tickets``) sees only the channels it names. The one
authenticator the API and the realtime gateway share, so a credential means the same thing on
every endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jwt

from sayso_common.credentials import ApiKeyResolver, decode_user_token, hash_secret, is_api_key
from sayso_common.jwt_keys import JwtKeys
from sayso_common.scoped_tokens import ScopedTokenResolver, is_scoped_token

Kind = Literal["api_key", "user", "scoped"]


@dataclass(frozen=True)
class Principal:
    owner_id: str
    kind: Kind
    # What open sockets and streams are re-checked by (see revocation.py): the SHA-256 of the
    # credential (for an API key, the stored ``key_hash``), never the credential itself.
    credential_id: str = field(default="", repr=False)
    key_id: str | None = None
    # A user token's ``exp`` (epoch seconds).
    expires_at: float | None = None
    is_admin: bool = False
    # The channels it is limited to (a scoped token's, a stream ticket's); None: all it reaches.
    channels: frozenset[str] | None = None
    # Whether it may answer reviews (a scoped token only when granted ``answer``).
    may_answer: bool = True

    @property
    def reader_id(self) -> str:
        """Whom messages are shaped for (``sayso_common.views.seen_by``): the owner, except for a
        scoped token, which reads as a channel member does (no owner's webhook settings)."""
        return f"scoped:{self.key_id}" if self.kind == "scoped" else self.owner_id


class BadCredentialsError(Exception):
    """Missing, malformed, unknown, revoked or expired; the message is safe to show."""


def credential_from_headers(authorization: str | None, x_api_key: str | None) -> str:
    """The API key or token of an HTTP request (``x-api-key`` wins, as in the API)."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BadCredentialsError("Authorization must be 'Bearer <API key or token>'")
        return value.strip()
    raise BadCredentialsError("missing credentials: send x-api-key or Authorization: Bearer")


class Authenticator:
    def __init__(
        self, keys: ApiKeyResolver, jwt_keys: JwtKeys, tokens: ScopedTokenResolver | None = None
    ) -> None:
        self._keys = keys
        self._jwt_keys = jwt_keys
        self._tokens = tokens

    async def principal(self, credential: str) -> Principal:
        if is_api_key(credential):
            owner = await self._keys.resolve(credential)
            if owner is None:
                raise BadCredentialsError("invalid or revoked API key")
            return Principal(owner.owner_id, "api_key", hash_secret(credential), owner.key_id)
        if is_scoped_token(credential):
            grant = await self._tokens.resolve(credential) if self._tokens is not None else None
            if grant is None:
                raise BadCredentialsError("invalid, revoked or expired token")
            return Principal(
                grant.owner_id,
                "scoped",
                hash_secret(credential),
                grant.token_id,
                grant.expires_at,
                channels=grant.channel_ids,
                may_answer=grant.answer,
            )
        try:
            claims = decode_user_token(credential, self._jwt_keys)
        except jwt.InvalidTokenError:
            raise BadCredentialsError("invalid or expired token") from None
        return Principal(
            str(claims["sub"]),
            "user",
            hash_secret(credential),
            None,
            float(claims["exp"]),
            is_admin=bool(claims.get("adm")),
        )
