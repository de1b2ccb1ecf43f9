"""What the API process holds while it runs; built in the lifespan, reached through deps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

from sayso_api.auth import Passwords
from sayso_api.feed import FeedWaiters
from sayso_api.reviewing import MongoReviewStore, Reviewing
from sayso_api.settings import ApiSettings
from sayso_common import membership
from sayso_common.credentials import ApiKeyResolver
from sayso_common.errors import NotFoundError
from sayso_common.jwt_keys import JwtKeys
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, Database, collection
from sayso_common.outbox import OutboxRelay
from sayso_common.principals import Authenticator, Principal
from sayso_common.runtime import Runtime
from sayso_common.scoped_tokens import ScopedTokenResolver
from sayso_common.secretbox import SecretBox


class ChannelCache:
    """channel id -> owner id, cached briefly: the message hot path needs it on every call.
    A deleted channel keeps accepting messages for at most ``ttl`` seconds on other replicas."""

    def __init__(self, db: Database, ttl: float) -> None:
        self._coll = collection(db, AGENTS)
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def owner_of(self, channel_id: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(channel_id)
        if hit and hit[0] > now:
            return hit[1]
        doc = await self._coll.find_one({"_id": channel_id}, {"owner_id": 1})
        owner = doc["owner_id"] if doc else None
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[channel_id] = (now + self._ttl, owner)
        return owner

    def forget(self, channel_id: str) -> None:
        self._cache.pop(channel_id, None)


@dataclass
class ApiContext:
    settings: ApiSettings
    runtime: Runtime
    keys: ApiKeyResolver
    channels: ChannelCache
    box: SecretBox
    auth: Authenticator
    jwt_keys: JwtKeys
    tokens: ScopedTokenResolver
    passwords: Passwords
    # This process's outbox relay (set once the lifespan has built it).
    relay: OutboxRelay | None = None
    # The pull feed's long-polls (sayso_api.feed), set by the lifespan.
    feed_waiters: FeedWaiters | None = None

    @property
    def db(self) -> Database:
        return self.runtime.db

    @cached_property
    def reviewing(self) -> Reviewing:
        """The review answer path (sayso_api.reviewing) over this process's MongoDB."""
        return Reviewing(MongoReviewStore(self.db))

    async def own_channel(self, owner_id: str, channel_id: str) -> None:
        """404 unless ``channel_id`` is one of ``owner_id``'s channels (another owner's is the
        same 404 as a missing one)."""
        if await self.channels.owner_of(channel_id) != owner_id:
            raise NotFoundError("channel")

    async def reach(self, who: Principal) -> Reach:
        """The channels ``who`` may read and answer in (see sayso_common.membership)."""
        return await membership.reach_of(self.db, who)

    async def readable_channel(self, who: Principal, channel_id: str) -> str:
        """The owner of ``channel_id`` if ``who`` may read it (its owner, or a user it was shared
        with); 404 otherwise. Membership is read fresh: a removed member loses it at once."""
        if who.channels is not None and channel_id not in who.channels:
            raise NotFoundError("channel")
        owner = await self.channels.owner_of(channel_id)
        if owner is not None and (owner == who.owner_id or channel_id in (await self.reach(who)).shared):
            return owner
        raise NotFoundError("channel")

    def outbox_written(self) -> None:
        """Nudge this process's relay after a write that queued an event. The change stream
        would wake it too; this saves that round trip when this replica holds the relay lease."""
        if self.relay is not None:
            self.relay.wake()
