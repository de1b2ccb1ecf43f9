"""``GET /api/v1/reviews/{id}/wait`` as a plain ASGI callable, in front of FastAPI.

A parked poll is the common case (thousands of them, each up to 30 s), and everything a request
holds while it waits is multiplied by their number. Through FastAPI each one also held Starlette's
middleware and routing frames, FastAPI's dependency machinery and exit stacks — about half of the
memory per parked poll. Here a poll holds one coroutine, its waiter future and timer, and the
encoded timed-out answer. The contract is the one the FastAPI route had: the same parameters and
limits, the same ``{"error": {...}}`` answers (401, 404, 405, 422, 503), and 429 when the caller's
account already has ``SAYSO_REALTIME_MAX_POLLS_PER_OWNER`` polls parked on this replica.
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import parse_qsl

from pymongo.errors import ConnectionFailure
from sayso_service.errors import DATABASE_DOWN, answer
from starlette.types import Receive, Scope, Send

from sayso_common.errors import (
    DomainError,
    ErrorCode,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from sayso_common.http_errors import ApiError, error_body
from sayso_common.membership import reach_of
from sayso_common.mongo import Database
from sayso_common.principals import Authenticator, BadCredentialsError, credential_from_headers
from sayso_common.scoped_tokens import not_for_scoped_tokens
from sayso_realtime.longpoll import encode, parse_timeout_ms, ready_by, wait_for_review, within
from sayso_realtime.quotas import ConnectionQuota, TooManyConnectionsError, too_many_connections
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.waiters import Waiters

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/api/v1/reviews/([^/]+)/wait$")
# Query parameters and their longest accepted value (the FastAPI route's ``max_length``).
_LIMITS = {"channel": 100, "timeout": 32}


def review_id_of(path: str) -> str | None:
    """The review id when ``path`` is a long-poll path, else None."""
    match = _PATH.match(path)
    return match.group(1) if match else None


def _query(raw: bytes) -> dict[str, str]:
    params = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    for name, limit in _LIMITS.items():
        value = params.get(name)
        if value is not None and len(value) > limit:
            message = f"{name}: String should have at most {limit} characters"
            raise InvalidError(ErrorCode.VALIDATION_ERROR, message, name)
    return params


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class WaitEndpoint:
    def __init__(self, settings: RealtimeSettings, waiters: Waiters, quota: ConnectionQuota) -> None:
        self._settings = settings
        self._waiters = waiters
        self._quota = quota
        self._db: Database | None = None
        self._auth: Authenticator | None = None

    def bind(self, db: Database, auth: Authenticator) -> None:
        """Called by the lifespan once MongoDB is open (uvicorn serves nothing before)."""
        self._db = db
        self._auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send, review_id: str) -> None:
        poll = asyncio.current_task()
        assert poll is not None
        watch = _Departure(poll)
        watcher = asyncio.create_task(watch.follow(receive))
        try:
            try:
                body = await self._answer(scope, review_id)
            except ApiError as exc:
                status, body, headers = (
                    exc.status,
                    encode(error_body(exc.code, exc.message, exc.field)),
                    exc.headers,
                )
            except DomainError as exc:
                status, error, headers = answer(exc)
                body = encode(error)
            except ConnectionFailure as exc:  # includes ServerSelectionTimeoutError
                log.warning("MongoDB unavailable: %s", type(exc).__name__)
                status, error, headers = answer(DATABASE_DOWN)
                body = encode(error)
            else:
                status, headers = 200, None
            watch.answering = True
            await _respond(send, status, body, headers)
        except asyncio.CancelledError:
            if not watch.left:
                raise
            # The client hung up: the poll's waiter and its place in the owner's quota were given
            # back as the cancellation unwound it (their ``finally`` blocks); nobody to answer.
            poll.uncancel()
        finally:
            watcher.cancel()

    async def _answer(self, scope: Scope, review_id: str) -> bytes:
        if scope["method"] != "GET":
            raise ApiError(405, ErrorCode.METHOD_NOT_ALLOWED, "Method Not Allowed", headers={"Allow": "GET"})
        if self._db is None or self._auth is None:
            raise UnavailableError(ErrorCode.UNAVAILABLE, "starting up; try again", retry_after=1)
        arrived = asyncio.get_running_loop().time()
        try:
            params, bad_query = _query(scope["query_string"]), None
        except InvalidError as exc:
            params, bad_query = {}, exc
        settings = self._settings
        seconds = (
            parse_timeout_ms(params.get("timeout"), settings.wait_default_ms, settings.wait_max_ms) / 1000
        )
        # The credential and reach lookups share the poll's budget with its first read: a MongoDB
        # that stalls must not hold the agent past its timeout here either.
        limit = ready_by(arrived, seconds)
        try:
            credential = credential_from_headers(
                _header(scope, b"authorization"), _header(scope, b"x-api-key")
            )
            who = await within(limit, self._auth.principal(credential))
        except BadCredentialsError as exc:
            raise UnauthorizedError(str(exc), challenge=True) from None
        if who.kind == "scoped":
            raise not_for_scoped_tokens()
        if bad_query is not None:
            raise bad_query  # after auth, in the order FastAPI checked them
        try:
            place = self._quota.take(who.owner_id)
        except TooManyConnectionsError as exc:
            raise too_many_connections(exc) from None
        try:
            reach = await within(limit, reach_of(self._db, who))
            body = await wait_for_review(
                self._db,
                self._waiters,
                reach,
                review_id,
                params.get("channel") or None,
                seconds,
                arrived,
                full=who.kind == "api_key",
            )
        finally:
            place.release()
        if body is None:
            raise NotFoundError("review")
        return body


class _Departure:
    """Ends a parked poll when its client disconnects, instead of at its timeout (issue #30): the
    ASGI server reports a closed connection as ``http.disconnect`` from ``receive``."""

    def __init__(self, poll: asyncio.Task[None]) -> None:
        self._poll = poll
        self.left = False
        self.answering = False  # from here on the poll ends by itself; a disconnect changes nothing

    async def follow(self, receive: Receive) -> None:
        # The request's body first (a GET has an empty one); after it, ``receive`` waits until
        # the client disconnects. Never a loop on what ``receive`` answers at once: a server (or
        # a test double) that keeps answering ``http.request`` would spin the event loop.
        message = await receive()
        while message["type"] == "http.request" and message.get("more_body", False):
            message = await receive()
        if message["type"] != "http.disconnect":
            message = await receive()
        if message["type"] == "http.disconnect" and not self.answering:
            self.left = True
            self._poll.cancel()


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
