"""The channels shared with the users who have live connections here, kept current.

A user's socket or SSE stream reads the channels shared with that user when it opens (see
:mod:`sayso_common.membership`). Owners add and remove members at any time, so every
``period`` one query re-reads them for every user connected to this replica, and each connection
whose set changed is told: a socket joins or leaves channel rooms, a stream re-scopes its
subscription. A removed member stops receiving the channel's events within about one period, and
an added one starts receiving them without reconnecting. Nothing here runs per event. An API key
never reaches a shared channel, so its connections are not tracked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pymongo.errors import PyMongoError

from sayso_common.membership import shared_with
from sayso_common.mongo import Database
from sayso_common.principals import Principal

log = logging.getLogger(__name__)

# Called synchronously from the refresh with the connection's new set of shared channels.
OnChange = Callable[[frozenset[str]], None]


class Tracked:
    """One connection's registration. ``release`` it when the connection ends."""

    __slots__ = ("_registry", "on_change", "shared", "user_id")

    def __init__(
        self, registry: SharedChannels | None, user_id: str, shared: frozenset[str], on_change: OnChange
    ) -> None:
        self._registry = registry
        self.user_id = user_id
        self.shared = shared
        self.on_change = on_change

    def release(self) -> None:
        if self._registry is not None:
            self._registry._release(self)


class SharedChannels:
    def __init__(self, db: Database, period: float, batch: int = 1000) -> None:
        self._db = db
        self._period = period
        self._batch = batch
        self._by_user: dict[str, set[Tracked]] = {}

    def track(self, principal: Principal, shared: frozenset[str], on_change: OnChange) -> Tracked:
        """Follow the channels shared with ``principal`` (as read when it connected: ``shared``)."""
        if principal.kind != "user":
            return Tracked(None, principal.owner_id, shared, on_change)
        tracked = Tracked(self, principal.owner_id, shared, on_change)
        self._by_user.setdefault(principal.owner_id, set()).add(tracked)
        return tracked

    def _release(self, tracked: Tracked) -> None:
        connections = self._by_user.get(tracked.user_id)
        if connections is not None:
            connections.discard(tracked)
            if not connections:
                del self._by_user[tracked.user_id]

    async def run(self) -> None:
        """Refresh every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._period)
            try:
                await self.refresh()
            except PyMongoError:
                # Kept as they were: a storage hiccup must not cut every member off.
                log.warning("shared channels could not be re-read; trying again next period")

    async def refresh(self) -> int:
        """One round; answers how many connections were told of a change."""
        users = list(self._by_user)
        current: dict[str, frozenset[str]] = {}
        for start in range(0, len(users), self._batch):
            current |= await shared_with(self._db, users[start : start + self._batch])
        changed = 0
        for user in users:
            now = current.get(user, frozenset())
            for tracked in list(self._by_user.get(user, ())):
                if tracked.shared != now:
                    tracked.shared = now
                    changed += 1
                    try:
                        tracked.on_change(now)
                    except Exception:
                        log.warning("re-scoping a connection failed", exc_info=True)
        return changed
