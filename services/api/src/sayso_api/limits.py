"""Request body size limit, enforced while reading (so chunked bodies cannot sneak past)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from sayso_service.errors import answer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sayso_common import numerals
from sayso_common.errors import DomainError, ErrorCode, TooLargeError


class BodyLimit:
    """``exempt`` names the requests whose route streams the body under a limit of its own (file
    uploads); every other body is capped at ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                # Unreadable or absurdly long: the server refuses it, or the count below stops it.
                declared = numerals.parse_uint(value.decode("latin-1"), numerals.CONTENT_LENGTH_DIGITS)
                if declared is not None and declared > self.max_bytes:
                    await self._reject(send)
                    return
        seen = 0
        rejected = False

        async def limited() -> Message:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    raise _TooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body ran over, whatever the app makes of the error (FastAPI turns an
            # exception while reading into a 400 "error parsing the body") is replaced by the 413.
            if not rejected:
                await send(message)

        with contextlib.suppress(_TooLargeError):
            await self.app(scope, limited, guarded_send)
        if rejected:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await send_error(
            send,
            TooLargeError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"request body exceeds {self.max_bytes} bytes (SAYSO_MAX_BODY_BYTES)",
            ),
        )


async def send_error(send: Send, error: DomainError) -> None:
    """Answer with the one error shape straight from ASGI middleware (before any route runs)."""
    status, shape, extra = answer(error)
    body = json.dumps(shape).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass
