from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import Counter
from sayso_service.probes import Check, probe_routes
from starlette.applications import Starlette
from starlette.requests import Request

from sayso_common import loops
from sayso_common.clock import utcnow
from sayso_common.runtime import Runtime
from sayso_expirer import backlog
from sayso_expirer.expiry import expire_due, next_deadline
from sayso_expirer.settings import ExpirerSettings

log = logging.getLogger(__name__)
LOOP_ERRORS = Counter("sayso_expirer_errors_total", "Expirer passes that failed (MongoDB down)")
# Never spin faster than this, even if the next deadline is already past (a review that failed
# to update is retried at this pace, not in a hot loop).
MIN_SLEEP = 0.05


async def expiry_pass(runtime: Runtime, settings: ExpirerSettings) -> float:
    """Expire what is due; return how long to sleep before the next pass."""
    found, expired = await expire_due(runtime.db, utcnow(), settings.expirer_batch, settings.expirer_parallel)
    if expired:
        log.info("expired reviews", extra={"count": expired})
    if found >= settings.expirer_batch:
        return 0.0  # a backlog: keep going without sleeping
    # Wake at the next deadline when it comes before the regular interval, so a review
    # expires within milliseconds of its deadline, not up to an interval later.
    upcoming = await next_deadline(runtime.db)
    if upcoming is None:
        return settings.expirer_interval
    until = (upcoming - utcnow()).total_seconds()
    return min(settings.expirer_interval, max(MIN_SLEEP, until))


async def expiry_loop(runtime: Runtime, settings: ExpirerSettings, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            delay = await expiry_pass(runtime, settings)
        except Exception:
            LOOP_ERRORS.inc()
            log.warning("expiry pass failed; will retry", exc_info=True)
            delay = settings.expirer_interval
        if delay <= 0:
            continue
        await loops.wait_set(stopping, delay)


def create_app(settings: ExpirerSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        app.state.runtime = runtime
        stopping = asyncio.Event()
        task = asyncio.create_task(expiry_loop(runtime, settings, stopping))
        # Backlog metrics (pending reviews, outbox age, response time): see backlog.py.
        metrics_task = asyncio.create_task(backlog.run(runtime.db), name="backlog-metrics")
        try:
            yield
        finally:
            metrics_task.cancel()
            # Let the current pass finish its bulk write rather than cutting it off.
            stopping.set()
            await task
            await asyncio.gather(metrics_task, return_exceptions=True)
            await runtime.close()

    def checks(request: Request) -> dict[str, Check]:
        return {"mongodb": request.app.state.runtime.check_mongo}

    return Starlette(routes=probe_routes(checks), lifespan=lifespan)
