"""Scoped read-only tokens for embedding (``sct_…``): a credential an owner hands to a page of
their own product so it can show some of their channels live, and nothing else.

A token names one or more of its owner's channels and an expiry. Held as a bearer credential it
reads the messages and reviews of those channels, mints stream tickets for them and opens their
streams; with ``answer`` granted it may also answer their reviews. Every other route refuses it
(the API's credential dependency refuses it unless a route asks for readers: see
``sayso_api.deps``). Tokens are random, shown once and stored as SHA-256, like API keys; the
API creates, lists and revokes them, and the API and the realtime gateway both resolve them here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from sayso_common.errors import ErrorCode, ForbiddenError
from sayso_common.mongo import SCOPED_TOKENS, Database, collection

TOKEN_PREFIX = "sct_"  # noqa: S105 (a prefix, not a secret)
# Bounds on what a token may be created with.
MAX_TOKEN_CHANNELS = 100
MAX_TOKEN_SECONDS = 90 * 86_400


def is_scoped_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def generate_scoped_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


@dataclass(frozen=True)
class Grant:
    """What a live token allows."""

    token_id: str
    owner_id: str
    channel_ids: frozenset[str]
    answer: bool
    # epoch seconds
    expires_at: float


class ScopedTokenResolver:
    """Looks tokens up by hash with a short cache, as :class:`ApiKeyResolver` does keys: a revoked
    token stops working within ``ttl`` seconds on every replica; an expired one at once."""

    def __init__(self, db: Database, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._coll = collection(db, SCOPED_TOKENS)
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, Grant | None]] = {}

    async def resolve(self, token: str) -> Grant | None:
        if not is_scoped_token(token) or len(token) > 200:
            return None
        digest = hash_secret(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and hit[0] > now:
            grant = hit[1]
        else:
            doc = await self._coll.find_one({"token_hash": digest, "revoked_at": None})
            grant = (
                Grant(
                    doc["_id"],
                    doc["owner_id"],
                    frozenset(doc["channel_ids"]),
                    bool(doc.get("answer")),
                    doc["expires_at"].timestamp(),
                )
                if doc
                else None
            )
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, grant)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    def forget(self, token_hash: str) -> None:
        self._cache.pop(token_hash, None)

    async def active(self, token_hashes: Iterable[str], batch: int = 1000) -> set[str]:
        """The hashes among ``token_hashes`` whose token exists, is not revoked and has not
        expired, read from MongoDB now (one query per ``batch``)."""
        digests = list(dict.fromkeys(token_hashes))
        found: set[str] = set()
        for start in range(0, len(digests), batch):
            chunk = digests[start : start + batch]
            query = {"token_hash": {"$in": chunk}, "revoked_at": None, "expires_at": {"$gt": utcnow()}}
            found.update(await self._coll.distinct("token_hash", query))
        for digest in digests:
            if digest not in found:
                self._cache.pop(digest, None)
        return found


def not_for_scoped_tokens() -> ForbiddenError:
    """What every route that does not accept a scoped token answers one with."""
    return ForbiddenError(
        ErrorCode.SCOPED_TOKEN_NOT_ALLOWED,
        "a scoped token may only read its channels' messages and reviews and open their streams",
    )
