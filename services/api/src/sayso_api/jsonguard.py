"""One gate every JSON request body passes before any route sees it.

Valid JSON can still be unstorable or unrenderable: integers beyond BSON's 64 bits, NaN and
Infinity (which Python's parser accepts), keys with NUL, strings with lone UTF-16 surrogates, and
nesting deep enough to hit MongoDB's limit or Python's recursion limit. Each of those used to
escape validation and end as a 500 deep inside a write. Here they are a 422 naming the field, for
every endpoint at once (messages, responses, agents, inbound webhooks, triggers), before anything
is stored. Malformed JSON is left to the routes, which answer it as ``invalid_json``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sayso_api.limits import send_error
from sayso_common.errors import ErrorCode, InvalidError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 64
_METHODS = frozenset({"POST", "PUT", "PATCH"})


class HostileJsonError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _constant(name: str) -> Any:
    raise HostileJsonError("", f"{name} is not a JSON number")


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _printable(key: str) -> str:
    return key.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def check_value(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`HostileJsonError` for the first part of ``value`` that cannot be stored and
    sent back as JSON. Iterative, so depth itself cannot overflow the checker."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list) and depth >= max_depth:
            raise HostileJsonError(path, f"nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key or not _encodable(key):
                    shown = _path(path, _printable(key))
                    raise HostileJsonError(shown, "keys must not contain NUL or unpaired surrogates")
                stack.append((child, _path(path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, _path(path, i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if not _encodable(item):
                raise HostileJsonError(path, "must not contain unpaired UTF-16 surrogates")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise HostileJsonError(path, "integers must fit in 64 bits (±9223372036854775807)")
        elif isinstance(item, float) and not math.isfinite(item):
            raise HostileJsonError(path, "numbers must be finite")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# What a hostile value needs in the raw bytes: an escape (NUL, lone surrogates), a raw NUL or a
# UTF-8 surrogate lead byte, NaN/Infinity, 19 digits in a row (beyond 64 bits) or an exponent
# (1e400 parses as infinity). None of them is common in agents' bodies.
_RISKY = re.compile(rb"\\u|\x00|\xed|NaN|Infinity|\d{19}|\d[eE]")


def plainly_safe(body: bytes) -> bool:
    """True if no hostile value can be in ``body`` (checked on the bytes, without parsing): none
    of the tokens above, and fewer brackets than the depth limit. A body this answers False for
    is parsed and walked."""
    return body.count(b"{") + body.count(b"[") < MAX_DEPTH and _RISKY.search(body) is None


def inspect(body: bytes) -> HostileJsonError | None:
    """The problem with a request body, or None (also for bodies that are not JSON at all)."""
    if not body or plainly_safe(body):
        # Most bodies: a scan of the bytes instead of a second parse (the route parses them).
        return None
    try:
        value = json.loads(body, parse_constant=_constant)
    except HostileJsonError as exc:
        return exc
    except RecursionError:
        return HostileJsonError("", f"nested more than {MAX_DEPTH} levels deep")
    except ValueError:
        return None  # malformed: the route's own parser answers invalid_json
    try:
        check_value(value)
    except HostileJsonError as exc:
        return exc
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI parses a body without a content type as JSON


class JsonGuard:
    """ASGI middleware: buffers a JSON request body (already capped by ``BodyLimit``), checks it
    with :func:`inspect`, and replays it to the app or answers 422."""

    def __init__(self, app: ASGIApp, skip: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        # Requests whose body is not JSON to buffer (streamed file uploads, which may be sent
        # without a Content-Type).
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _METHODS
            or not _is_json(scope)
            or (self.skip is not None and self.skip(scope))
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = inspect(body)
        if problem is None:
            await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)
            return
        field = problem.field or None
        text = f"{field}: {problem.message}" if field else problem.message
        await send_error(send, InvalidError(ErrorCode.VALIDATION_ERROR, text, field))


def _replay(first: list[Message], receive: Receive) -> Receive:
    pending = list(first)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
