"""Credential formats shared by the API (which issues them) and realtime (which checks them).

API keys are random, shown once, and stored as SHA-256 (they carry 240 bits of entropy, so a
fast hash is the right tool; passwords use a slow KDF in the API). User sessions are HS256 JWTs
signed with :class:`JwtKeys`: the newest key signs and names itself in the token's ``kid``
header, every listed key still verifies its own tokens, so a signing key is rotated by putting a
new one first and dropping the old one once its tokens have expired (``SAYSO_JWT_KEYS``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from sayso_common.clock import utcnow
from sayso_common.jwt_keys import JWT_AUDIENCE, JwtKeys
from sayso_common.mongo import API_KEYS, Database, collection

# New keys start with Placet's ``hp_`` (its MCP server refuses any other prefix); keys issued
# before that change start with ``sk_`` and keep working.
API_KEY_PREFIX = "hp_"
API_KEY_PREFIXES = ("hp_", "sk_")


def is_api_key(credential: str) -> bool:
    """Whether a bearer credential is shaped like an API key (rather than a user JWT)."""
    return credential.startswith(API_KEY_PREFIXES)


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(30)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The part of a key safe to show in lists, enough to tell keys apart."""
    return key[:10]


def issue_user_token(user_id: str, keys: JwtKeys, ttl_seconds: int, is_admin: bool = False) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "adm": is_admin,
        "typ": "user",
    }
    return keys.sign(claims)


def decode_user_token(token: str, keys: JwtKeys) -> dict[str, Any]:
    """Raises ``jwt.InvalidTokenError`` on anything but a valid, unexpired HS256 user token."""
    claims = keys.verify(token)
    if claims.get("typ") != "user":
        raise jwt.InvalidTokenError("not a user token")
    return claims


@dataclass(frozen=True)
class KeyOwner:
    key_id: str
    owner_id: str


class ApiKeyResolver:
    """Looks API keys up by hash with a short cache: the hot path skips a round trip, and a
    revoked key stops working within ``ttl`` seconds on every replica."""

    def __init__(self, db: Database, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._coll = collection(db, API_KEYS)
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, KeyOwner | None]] = {}
        self._touched: dict[str, float] = {}

    async def resolve(self, key: str) -> KeyOwner | None:
        if not is_api_key(key) or len(key) > 200:
            return None
        digest = hash_secret(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and hit[0] > now:
            owner = hit[1]
        else:
            doc = await self._coll.find_one({"key_hash": digest, "revoked_at": None}, {"owner_id": 1})
            owner = KeyOwner(doc["_id"], doc["owner_id"]) if doc else None
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, owner)
        if owner and now - self._touched.get(owner.key_id, 0.0) > 60:
            # last_used is coarse (a minute) so it never costs a write per request.
            self._touched[owner.key_id] = now
            await self._coll.update_one({"_id": owner.key_id}, {"$set": {"last_used_at": utcnow()}})
        return owner

    def forget(self, key_hash: str) -> None:
        self._cache.pop(key_hash, None)

    async def active(self, key_hashes: Iterable[str], batch: int = 1000) -> dict[str, KeyOwner]:
        """The keys among ``key_hashes`` (SHA-256 digests, as stored) that exist and are not
        revoked, read from MongoDB now rather than the cache: one query per ``batch`` digests.
        The cache is refreshed with the answer, so a key found revoked is refused at once here."""
        digests = list(dict.fromkeys(key_hashes))
        found: dict[str, KeyOwner] = {}
        for start in range(0, len(digests), batch):
            chunk = digests[start : start + batch]
            cursor = self._coll.find(
                {"key_hash": {"$in": chunk}, "revoked_at": None}, {"key_hash": 1, "owner_id": 1}
            )
            async for doc in cursor:
                found[doc["key_hash"]] = KeyOwner(doc["_id"], doc["owner_id"])
        expires = time.monotonic() + self._ttl
        if len(self._cache) + len(digests) > self._max:
            self._cache.clear()
        for digest in digests[: self._max]:
            self._cache[digest] = (expires, found.get(digest))
        return found
