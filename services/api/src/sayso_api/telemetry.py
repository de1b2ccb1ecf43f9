"""Request metrics as a plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and
a stream per request, measurable on the message hot path)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sayso_common import otel, tracing

REQUESTS = Counter("sayso_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "sayso_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        incoming = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"traceparent"), None
        )
        # The caller's trace continues here (a new span of it), else this request starts one;
        # every event written by the request carries it on (sayso_common.tracing).
        # With OpenTelemetry on, FastAPI's server span (around this middleware) is that span.
        parent = tracing.parse(incoming)
        own = otel.current_traceparent() if otel.active() else None
        token = tracing.CURRENT.set(own or (tracing.child(parent) if parent else tracing.new()))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            tracing.CURRENT.reset(token)
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
