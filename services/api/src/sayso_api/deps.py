"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sayso_api.context import ApiContext
from sayso_common.errors import ErrorCode, ForbiddenError, UnauthorizedError
from sayso_common.principals import BadCredentialsError, Principal, credential_from_headers
from sayso_common.scoped_tokens import not_for_scoped_tokens


async def _context(request: Request) -> ApiContext:
    # async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request.
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]


async def _caller(request: Request) -> Principal:
    # Headers are read directly: declaring them as FastAPI parameters costs measurably more on
    # the message hot path, and the OpenAPI security scheme documents them instead.
    ctx: ApiContext = request.app.state.ctx
    try:
        credential = credential_from_headers(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        return await ctx.auth.principal(credential)
    except BadCredentialsError as exc:
        raise UnauthorizedError(str(exc), challenge=True) from None


async def _principal(request: Request) -> Principal:
    """An API key or a user session. A scoped token is refused here, so a route accepts one only
    by asking for :data:`CurrentReader` (or :data:`CurrentAnswerer`): a new route cannot take one
    by accident (tests/api/test_scoped_tokens.py walks the route table)."""
    who = await _caller(request)
    if who.kind == "scoped":
        raise not_for_scoped_tokens()
    return who


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
# Reads of messages and reviews: also a scoped token, limited to its channels (its Reach).
CurrentReader = Annotated[Principal, Depends(_caller)]


async def _user(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "user":
        raise ForbiddenError(
            ErrorCode.USER_REQUIRED, "this endpoint needs a user session (JWT), not an API key"
        )
    return principal


CurrentUser = Annotated[Principal, Depends(_user)]


async def _answerer(request: Request) -> Principal:
    who = await _caller(request)
    if who.kind == "scoped" and not who.may_answer:
        raise ForbiddenError(ErrorCode.ANSWER_NOT_GRANTED, "this scoped token was not granted answer: true")
    if who.kind == "api_key":
        raise ForbiddenError(
            ErrorCode.USER_REQUIRED, "this endpoint needs a user session (JWT), not an API key"
        )
    return who


# Answers to reviews: a user, or a scoped token granted ``answer``.
CurrentAnswerer = Annotated[Principal, Depends(_answerer)]


async def _admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise ForbiddenError(ErrorCode.ADMIN_REQUIRED, "only an admin can do this")
    return user


CurrentAdmin = Annotated[Principal, Depends(_admin)]
