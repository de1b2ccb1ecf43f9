"""The services' long-running loops: restart after a failure, and MongoDB change streams that
reopen when interrupted. One home, so every loop logs, waits and recovers the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

Change = Mapping[str, Any]

# How long mongod holds a change stream's getMore when nothing matches (its default: 1 s). A
# change is returned as soon as it is written either way; a longer hold only spares an idle
# stream's empty round trips (a dozen streams across the stack, issue #36).
IDLE_AWAIT_MS = 10_000


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11 a ``wait_for`` whose
    inner wait ends just as the caller is cancelled drops the cancellation, and a loop that waits
    here between rounds would then run on after it was told to stop."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def forever(
    what: str,
    run: Callable[[], Awaitable[None]],
    *,
    errors: tuple[type[BaseException], ...] = (Exception,),
    on_error: Callable[[], None] | None = None,
    delay: float = 1.0,
) -> NoReturn:
    """Run ``run`` again whenever it returns or raises one of ``errors`` (logged, then ``delay``
    seconds later), until cancelled. Cancellation is never caught."""
    while True:
        try:
            await run()
        except errors:
            if on_error is not None:
                on_error()
            log.warning("%s interrupted; restarting", what, exc_info=True)
        await asyncio.sleep(delay)


async def watch(
    source: AsyncCollection[Any] | AsyncDatabase[Any],
    pipeline: Sequence[Mapping[str, Any]],
    on_change: Callable[[Change], None],
    *,
    what: str,
    on_open: Callable[[], None] | None = None,
    **options: Any,
) -> NoReturn:
    """Follow a change stream for good, reopening it after an interruption. ``on_open`` runs each
    time a stream is open: what changed while none was open is unknown, so callers re-read
    (drain, clear a cache) there."""

    async def follow() -> None:
        async with await source.watch(
            list(pipeline), **{"max_await_time_ms": IDLE_AWAIT_MS, **options}
        ) as stream:
            if on_open is not None:
                on_open()
            async for change in stream:
                on_change(change)

    await forever(what, follow, errors=(PyMongoError,))


async def every(
    what: str,
    period: float,
    step: Callable[[], Awaitable[None]],
    *,
    wait_first: bool = False,
    on_error: Callable[[], None] | None = None,
) -> NoReturn:
    """Run ``step`` every ``period`` seconds until cancelled; a failure is logged (and
    ``on_error`` called), never fatal."""
    if wait_first:
        await asyncio.sleep(period)
    while True:
        try:
            await step()
        except Exception:
            if on_error is not None:
                on_error()
            log.warning("%s failed; will retry", what, exc_info=True)
        await asyncio.sleep(period)


async def until_done(what: str, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` until it succeeds, waiting out MongoDB errors with a growing pause (0.2 s up
    to 5 s). For consumer handlers: FastStream commits the offsets even when the handler raises,
    so the batch must be stored before it returns."""
    delay = 0.2
    while True:
        try:
            await step()
            return
        except PyMongoError:
            log.warning("cannot store %s; retrying before committing", what, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def sweep(what: str, step: Callable[[], Awaitable[float]], wake: asyncio.Event) -> NoReturn:
    """Run ``step`` again after the delay it returns (0: at once), or sooner when ``wake`` is set.
    A failure is logged and retried a second later. For the sweeps of leased work queues."""
    while True:
        try:
            wake.clear()
            delay = await step()
        except Exception:
            log.warning("%s failed; retrying", what, exc_info=True)
            delay = 1.0
        if delay > 0:
            await wait_set(wake, delay)
