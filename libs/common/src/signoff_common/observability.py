"""Structured logs, health and readiness probes, Prometheus metrics: the same for every service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signoff_common import tracing

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields become top-level keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace = tracing.trace_id(tracing.current())
        if trace:
            line["trace_id"] = trace
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "uvicorn.access", "engineio", "socketio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.error").handlers[:] = []
    logging.getLogger("uvicorn.error").propagate = True


Check = Callable[[], Awaitable[None]]

# Whether each dependency (mongodb, kafka) answered this process's last check: 1 or 0. Refreshed by
# every /readyz and every /metrics scrape, so an alert sees "MongoDB unreachable" from any service
# even where nothing polls /readyz (docker-compose health checks use /healthz).
DEPENDENCY_UP = Gauge(
    "signoff_dependency_up", "Whether the dependency answered the last readiness check", ["dependency"]
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


def probe_routes(checks: Callable[[Request], dict[str, Check]]) -> list[Route]:
    """``/healthz`` (process up), ``/readyz`` (every named dependency answers), ``/metrics``."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

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
        # Refresh signoff_dependency_up first (concurrently, bounded): the scrape is the clock.
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
