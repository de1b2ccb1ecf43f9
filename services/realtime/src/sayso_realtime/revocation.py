"""Closing open sockets and SSE streams whose credential stopped holding.

A socket or stream is authenticated once, when it opens; left at that, a revoked API key, an
expired token or a removed user would go on receiving events for as long as the connection lives.
So each open connection is registered here with its principal — the SHA-256 of its credential (for
an API key, the stored ``key_hash``), the token's ``exp``, the owner; never the credential itself —
and every ``realtime_revalidate_seconds`` one round re-checks every *distinct* credential at once:

* a user token past its ``exp`` fails (no query);
* API keys: one ``$in`` query on the key hashes (per 1000 keys) for those not revoked
  (:meth:`ApiKeyResolver.active`, which also refreshes the resolver's cache, so the revoked key
  is refused at once when the client tries to reconnect here); scoped tokens likewise
  (:meth:`ScopedTokenResolver.active`; their expiry is the principal's ``exp``);
* owners: one ``$in`` query on ``users``; a user who no longer exists loses every connection, its
  tokens' and its keys'.

Each connection of a failed credential is handed to its own ``revoke`` callback (sockets.py and
sse.py tell the client why, then close). Nothing here runs per event. Every replica checks MongoDB
by itself, so nothing is exchanged between replicas. When MongoDB cannot be read, the round keeps
the connections (a storage hiccup must not drop every dashboard) and the next one tries again;
token expiry is enforced regardless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Literal

from pymongo.errors import PyMongoError

from sayso_common.credentials import ApiKeyResolver
from sayso_common.mongo import USERS, Database, collection
from sayso_common.principals import Principal
from sayso_common.scoped_tokens import ScopedTokenResolver
from sayso_realtime.metrics import REVALIDATIONS, REVOKED_CONNECTIONS, WATCHED_CREDENTIALS

log = logging.getLogger(__name__)

Reason = Literal["api_key_revoked", "scoped_token_revoked", "token_expired", "user_removed"]
# What the client is told (the code is always ``credentials_revoked``).
MESSAGES: dict[Reason, str] = {
    "api_key_revoked": "the API key was revoked",
    "scoped_token_revoked": "the scoped token was revoked",
    "token_expired": "the token expired",
    "user_removed": "the user no longer exists",
}
CODE = "credentials_revoked"

# Called once, synchronously, from the revalidation round with the message for the client; it must
# not block (schedule the closing and return).
Revoke = Callable[[str], None]


class _Credential:
    __slots__ = ("connections", "credential_id", "expires_at", "key_id", "kind", "owner_id")

    def __init__(self, principal: Principal) -> None:
        self.credential_id = principal.credential_id
        self.kind = principal.kind
        self.owner_id = principal.owner_id
        self.key_id = principal.key_id
        self.expires_at = principal.expires_at
        self.connections: set[Watched] = set()


class Watched:
    """One open connection's registration. ``release`` it when the connection ends."""

    __slots__ = ("_credential", "_watch", "revoke")

    def __init__(self, watch: CredentialWatch, credential: _Credential, revoke: Revoke) -> None:
        self._watch = watch
        self._credential = credential
        self.revoke = revoke

    def release(self) -> None:
        self._watch._release(self._credential, self)


class CredentialWatch:
    def __init__(
        self,
        db: Database,
        keys: ApiKeyResolver,
        period: float,
        batch: int = 1000,
        tokens: ScopedTokenResolver | None = None,
    ) -> None:
        self._users = collection(db, USERS)
        self._keys = keys
        self._tokens = tokens
        self._period = period
        self._batch = batch
        self._credentials: dict[str, _Credential] = {}
        WATCHED_CREDENTIALS.set_function(lambda: len(self._credentials))

    def __len__(self) -> int:
        return len(self._credentials)

    def watch(self, principal: Principal, revoke: Revoke) -> Watched:
        credential = self._credentials.get(principal.credential_id)
        if credential is None:
            credential = self._credentials[principal.credential_id] = _Credential(principal)
        watched = Watched(self, credential, revoke)
        credential.connections.add(watched)
        return watched

    def _release(self, credential: _Credential, watched: Watched) -> None:
        credential.connections.discard(watched)
        if not credential.connections and self._credentials.get(credential.credential_id) is credential:
            del self._credentials[credential.credential_id]

    async def run(self) -> None:
        """Re-check every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._period)
            try:
                await self.check()
            except Exception:
                REVALIDATIONS.labels("error").inc()
                log.warning("credential revalidation failed; retrying next period", exc_info=True)

    async def check(self) -> int:
        """One round; answers how many connections it closed."""
        if not self._credentials:
            return 0
        credentials = list(self._credentials.values())
        try:
            failed = await self._failures(credentials)
        except PyMongoError:
            REVALIDATIONS.labels("storage_unavailable").inc()
            log.warning("credential revalidation could not read MongoDB; connections kept until next period")
            # Token expiry holds regardless.
            failed = self._expired(credentials)
        else:
            REVALIDATIONS.labels("ok").inc()
        closed = 0
        for c in credentials:
            reason = failed.get(c.credential_id)
            if reason is not None:
                closed += self._revoke(c, reason)
        return closed

    async def holds(self, principal: Principal) -> bool:
        """Whether ``principal``'s credential holds now, read from MongoDB (a stream ticket's
        minting credential, checked when the ticket is used)."""
        return not await self._failures([_Credential(principal)])

    @staticmethod
    def _expired(credentials: list[_Credential]) -> dict[str, Reason]:
        now = time.time()
        return {
            c.credential_id: "token_expired"
            for c in credentials
            if c.expires_at is not None and c.expires_at <= now
        }

    async def _failures(self, credentials: list[_Credential]) -> dict[str, Reason]:
        failed = self._expired(credentials)
        live = [c for c in credentials if c.credential_id not in failed]
        keys = [c.credential_id for c in live if c.kind == "api_key"]
        active_keys = await self._keys.active(keys, self._batch) if keys else {}
        tokens = [c.credential_id for c in live if c.kind == "scoped"]
        active_tokens = await self._tokens.active(tokens, self._batch) if tokens and self._tokens else set()
        owners = await self._existing_users({c.owner_id for c in live})
        for c in live:
            if c.kind == "api_key" and c.credential_id not in active_keys:
                failed[c.credential_id] = "api_key_revoked"
            elif c.kind == "scoped" and c.credential_id not in active_tokens:
                failed[c.credential_id] = "scoped_token_revoked"
            elif c.owner_id not in owners:
                failed[c.credential_id] = "user_removed"
        return failed

    async def _existing_users(self, owner_ids: Iterable[str]) -> set[str]:
        ids = list(owner_ids)
        found: set[str] = set()
        for start in range(0, len(ids), self._batch):
            chunk = ids[start : start + self._batch]
            found.update(await self._users.distinct("_id", {"_id": {"$in": chunk}}))
        return found

    def _revoke(self, credential: _Credential, reason: Reason) -> int:
        # Forgotten first: a connection releasing itself from its callback finds nothing to do.
        if self._credentials.get(credential.credential_id) is credential:
            del self._credentials[credential.credential_id]
        connections = list(credential.connections)
        credential.connections.clear()
        for watched in connections:
            try:
                watched.revoke(MESSAGES[reason])
            except Exception:
                log.warning("closing a revoked connection failed", exc_info=True)
        REVOKED_CONNECTIONS.labels(reason).inc(len(connections))
        log.info(
            "closing connections whose credential no longer holds",
            extra={
                "reason": reason,
                "kind": credential.kind,
                "owner_id": credential.owner_id,
                "key_id": credential.key_id,
                "connections": len(connections),
            },
        )
        return len(connections)
