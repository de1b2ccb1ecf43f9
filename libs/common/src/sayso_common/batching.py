"""Calls made in the same event-loop turn, sent to MongoDB as one statement.

At hundreds of requests a second, each single-document write costs a round trip, pymongo's
whole write path (session, server selection, retry wrapper) and mongod's command overhead; sent
as one bulk they cost roughly what one of them did. A caller still awaits its own result: the
batch answers each item with its own value or its own exception, and a failure of the whole
statement (a network error, a lost primary) reaches every caller in it, exactly as the single
writes it replaces would have failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from sayso_common.mongo import DUPLICATE_KEY

T = TypeVar("T")
R = TypeVar("R")
D = TypeVar("D", bound=Any)

LIMIT = 1000


class TurnBatcher(Generic[T, R]):
    """Collects the items submitted during one event-loop turn and hands them to ``write``
    together (at most ``limit`` at a time). ``write`` returns one answer per item, in order; if it
    raises, every item of the batch gets that exception."""

    def __init__(
        self, write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]], limit: int = LIMIT
    ) -> None:
        self._write = write
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let the callers of this loop turn join the batch
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            try:
                answers = await self._write([item for item, _ in batch])
            except Exception as exc:  # every caller learns the write failed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except asyncio.CancelledError:  # shutting down: nobody waits forever
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending = []
                raise
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():  # its caller was cancelled; the write happened regardless
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)


class GroupedInserts(Generic[D]):
    """``insert_one`` for many concurrent callers as one unordered ``insert_many`` per loop turn.
    A document that breaks a unique index raises :class:`DuplicateKeyError` (its message names
    the index, as ``insert_one``'s does) for its caller alone; the others are inserted."""

    def __init__(self, coll: AsyncCollection[D], limit: int = LIMIT) -> None:
        self._coll = coll
        self._batcher: TurnBatcher[D, None] = TurnBatcher(self._insert, limit)

    async def insert(self, doc: D) -> None:
        await self._batcher.submit(doc)

    async def _insert(self, docs: list[D]) -> list[BaseException | None]:
        answers: list[BaseException | None] = [None] * len(docs)
        try:
            await self._coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
            for err in exc.details.get("writeErrors", []):
                kind = DuplicateKeyError if err.get("code") == DUPLICATE_KEY else WriteError
                answers[err["index"]] = kind(err.get("errmsg", ""), err.get("code"), err)
        return answers
