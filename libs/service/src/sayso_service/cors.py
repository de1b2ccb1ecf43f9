"""Cross-origin access for browsers: one origin rule (``SAYSO_CORS_ORIGINS``) for the REST API, the
SSE stream, the long-poll and Socket.IO.

Credentials travel in headers (``Authorization``, ``X-Api-Key``), never in cookies, so a listed
origin is given the headers it may send and the origin echoed back, but never
``Access-Control-Allow-Credentials``: a page on another origin can use a key it holds, never a
session of the browser's. The answer is always the request's own origin, never ``*``, even when
``"*"`` is configured, and nothing at all for an origin that is not allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sayso_common.errors import ErrorCode
from sayso_common.http_errors import error_body

# What clients send: credentials, JSON bodies, retry keys, the SSE resume cursor, trace context.
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "idempotency-key",
    "last-event-id",
    "traceparent",
    "tracestate",
    "x-api-key",
)
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What a script on another origin may read besides the CORS-safelisted response headers.
EXPOSED_HEADERS = ("Content-Disposition", "Idempotent-Replayed", "Location", "Retry-After")
# Browsers cap it (Chromium at 2 h); ten minutes keeps a changed setting from lingering.
MAX_AGE_SECONDS = 600


def origin_allowed(origin: str, allowed: list[str], host: str) -> bool:
    """The one rule: a listed origin, any origin when ``"*"`` is listed, or the page's own origin.
    Same origin compares only the host part (``host`` is the request's Host header): TLS ends at
    the edge, so the scheme the service sees is not the browser's."""
    if "*" in allowed or origin in allowed:
        return True
    return bool(host) and origin.split("://", 1)[-1] == host


def origin_checker(allowed: list[str]) -> Callable[[str | None, dict[str, Any]], bool]:
    """The rule in Engine.IO's shape (``cors_allowed_origins``): a request without ``Origin`` (a
    script, the Python client) is not a browser's cross-origin request and passes."""

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        return origin is None or origin_allowed(origin, allowed, environ.get("HTTP_HOST", ""))

    return check


class Cors:
    """ASGI middleware: answers preflights and adds the CORS headers to every HTTP answer (streams
    included) for an allowed origin; ``Vary: Origin`` on every answer, so a cache never hands one
    origin's answer to another."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = list(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin_allowed(origin, self.allowed, headers.get("host", ""))
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await self._preflight(origin, allowed, headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw.append((b"vary", b"Origin"))
                if allowed and origin is not None:
                    raw.append((b"access-control-allow-origin", origin.encode("latin-1")))
                    raw.append((b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, origin: str, allowed: bool, headers: Headers) -> Response:
        vary = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
        if not allowed:
            message = f"origin {origin[:200]!r} is not allowed; list it in SAYSO_CORS_ORIGINS"
            return JSONResponse(
                error_body(ErrorCode.ORIGIN_NOT_ALLOWED, message), status_code=403, headers=vary
            )
        method = headers["access-control-request-method"].upper()
        if method not in ALLOWED_METHODS:
            message = (
                f"method {method[:20]!r} is not allowed cross-origin; allowed: {', '.join(ALLOWED_METHODS)}"
            )
            return JSONResponse(
                error_body(ErrorCode.METHOD_NOT_ALLOWED, message), status_code=403, headers=vary
            )
        return Response(
            status_code=204,
            headers={
                **vary,
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            },
        )
