"""Long-poll waiters: one future per waiting request, keyed by the review (message) id.

A waiter is registered *before* the request reads MongoDB, so an outcome landing between that
read and the wait still resolves the future: nothing is missed and nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from sayso_common.events import Event, ReviewExpired, ReviewResponded

Outcome = ReviewResponded | ReviewExpired


class Waiters:
    def __init__(self) -> None:
        self._by_review: dict[str, set[asyncio.Future[Outcome]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @contextlib.contextmanager
    def register(self, review_id: str) -> Iterator[asyncio.Future[Outcome]]:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._by_review.setdefault(review_id, set()).add(future)
        self._count += 1
        try:
            yield future
        finally:
            self._count -= 1
            waiting = self._by_review.get(review_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._by_review[review_id]
            if future.done() and not future.cancelled():
                future.exception()  # a timeout set as the task was cancelled: mark it seen
            future.cancel()  # a no-op once resolved; stops a late wake from touching it

    def wake(self, event: Event) -> int:
        """Resolve every waiter of the review this event closes; returns how many woke."""
        if not isinstance(event, ReviewResponded | ReviewExpired):
            return 0
        woken = 0
        for future in self._by_review.get(event.data.message.id, ()):
            if not future.done():
                future.set_result(event)
                woken += 1
        return woken
