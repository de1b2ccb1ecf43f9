"""Running a service over HTTP with uvicorn.

SIGTERM handling comes from uvicorn: it stops accepting connections, lets in-flight requests
finish (up to the graceful timeout), then runs the lifespan shutdown, where consumers commit and
background loops finish their current item.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from sayso_common import otel
from sayso_common.observability import configure_logging
from sayso_common.settings import ServiceSettings
from sayso_service import uvicorn_internals


def serve(app: ASGIApp, settings: ServiceSettings, service: str) -> None:
    configure_logging(settings.instance or service, settings.log_level)
    # Off unless SAYSO_OTEL=true; then the OTEL_* variables say where (sayso_common.otel).
    stop_otel = otel.configure(service, settings.otel)
    try:
        _run(app, settings)
    finally:
        stop_otel()  # flushes the spans and metrics still buffered


def _run(app: ASGIApp, settings: ServiceSettings) -> None:
    # Without uvicorn's command line (and click): sayso_service.uvicorn_internals.
    uvicorn_internals.run(
        app,
        host=settings.host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.http_keepalive_seconds,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
