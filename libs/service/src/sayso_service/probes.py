"""Health and readiness probes and the Prometheus endpoint: the same for every service."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Check = Callable[[], Awaitable[None]]

# Whether each dependency (mongodb, kafka) answered this process's last check: 1 or 0. Refreshed by
# every /readyz and every /metrics scrape, so an alert sees "MongoDB unreachable" from any service
# even where nothing polls /readyz (docker-compose health checks use /healthz).
DEPENDENCY_UP = Gauge(
    "sayso_dependency_up", "Whether the dependency answered the last readiness check", ["dependency"]
)
# Checks run at scrape time give up after this long (each check has its own shorter timeout).
SCRAPE_CHECK_TIMEOUT = 3.0


async def _run_check(name: str, check: Check) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        await check()
    except Exception as exc:
        DEPENDENCY_UP.labels(name).set(0)
        return False, f"unavailable: {type(exc).__name__}"
    DEPENDENCY_UP.labels(name).set(1)
    return True, f"ok ({(time.perf_counter() - started) * 1000:.0f} ms)"


# /healthz waits at most this long for its detail: it is a liveness probe, and a slow database must
# not make a live process look dead.
DETAIL_TIMEOUT = 0.5


def probe_routes(
    checks: Callable[[Request], dict[str, Check]],
    detail: Callable[[Request], Awaitable[dict[str, Any]]] | None = None,
) -> list[Route]:
    """``/healthz`` (process up, with ``detail``'s fields when it answers in time; never a reason
    to fail), ``/readyz`` (every named dependency answers), ``/metrics``."""

    async def healthz(request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok"}
        if detail is not None:
            try:
                body |= await asyncio.wait_for(detail(request), DETAIL_TIMEOUT)
            except Exception as exc:
                body["detail"] = f"unavailable: {type(exc).__name__}"
        return JSONResponse(body)

    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        ok = True
        for name, check in checks(request).items():
            passed, results[name] = await _run_check(name, check)
            ok = ok and passed
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results},
            status_code=200 if ok else 503,
            headers=None if ok else {"Retry-After": "2"},
        )

    async def metrics(request: Request) -> Response:
        # Refresh sayso_dependency_up first (concurrently, bounded): the scrape is the clock.
        with contextlib.suppress(Exception):
            named = checks(request)
            await asyncio.wait_for(
                asyncio.gather(*(_run_check(n, c) for n, c in named.items())), SCRAPE_CHECK_TIMEOUT
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, include_in_schema=False),
        Route("/readyz", readyz, include_in_schema=False),
        Route("/metrics", metrics, include_in_schema=False),
    ]
