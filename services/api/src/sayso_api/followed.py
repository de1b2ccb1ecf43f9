"""Reads kept while a change stream vouches for them: a process keeps what it read from one
collection, by key, only while a change stream on that collection is open, and forgets all of it
on any change there (the collections this serves change rarely) or whenever the stream is not
open (then every call reads again). A change made on any replica is thus seen by every replica
as soon as its change event arrives (milliseconds), and at once by the replica that made it
(which calls :meth:`Followed.forget`). Used for policy heads (sayso_api.policies) and
remembered approvals (sayso_api.remembered)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, NoReturn, TypeVar

from pymongo.errors import PyMongoError

from sayso_common import loops
from sayso_common.mongo import Collection

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Followed(Generic[K, V]):
    def __init__(self, watched: Collection, what: str, limit: int = 100_000) -> None:
        self._watched = watched
        self._what = what
        self._limit = limit
        self._kept: dict[K, V] = {}
        # True only while the change stream is open; every change, open and close bumps the
        # generation, so a read that started before one is never kept.
        self._watching = False
        self._generation = 0

    @property
    def watching(self) -> bool:
        return self._watching

    def kept(self) -> int:
        return len(self._kept)

    def forget(self) -> None:
        """Drop everything kept (something changed, or may have)."""
        self._kept.clear()
        self._generation += 1

    def _set_watching(self, watching: bool) -> None:
        self._watching = watching
        self.forget()

    async def follow_changes(self) -> NoReturn:
        """Keep reads while the change stream is open; run for the process's life."""

        async def follow() -> None:
            pipeline: list[dict[str, Any]] = [{"$project": {"_id": 1}}]
            try:
                async with await self._watched.watch(
                    pipeline, max_await_time_ms=loops.IDLE_AWAIT_MS
                ) as stream:
                    self._set_watching(True)
                    async for _ in stream:
                        self.forget()
            finally:
                self._set_watching(False)

        await loops.forever(f"{self._what} change stream", follow, errors=(PyMongoError,))

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value kept for ``key``, else ``load()`` (kept if nothing changed meanwhile)."""
        if self._watching and key in self._kept:
            return self._kept[key]
        generation = self._generation
        value = await load()
        if self._watching and generation == self._generation:
            if len(self._kept) >= self._limit:
                self._kept.clear()
            self._kept[key] = value
        return value
