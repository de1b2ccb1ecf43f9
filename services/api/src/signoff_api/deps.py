"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request

from signoff_api.context import ApiContext
from signoff_common.credentials import decode_user_token, is_api_key
from signoff_common.http_errors import ApiError, unauthorized


async def _context(request: Request) -> ApiContext:
    # async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request.
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an agent (API key) or a human (JWT). Both act for one owner."""

    owner_id: str
    kind: Literal["api_key", "user"]
    is_admin: bool = False
    key_id: str | None = None


async def _principal(request: Request) -> Principal:
    # Headers are read directly: declaring them as FastAPI parameters costs measurably more on
    # the message hot path, and the OpenAPI security scheme below documents them instead.
    ctx: ApiContext = request.app.state.ctx
    authorization = request.headers.get("authorization")
    token = request.headers.get("x-api-key")
    if token is None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise unauthorized("Authorization must be 'Bearer <API key or token>'")
        token = value.strip()
    if not token:
        raise unauthorized("missing credentials: send x-api-key or Authorization: Bearer")
    if is_api_key(token):
        owner = await ctx.keys.resolve(token)
        if owner is None:
            raise unauthorized("invalid or revoked API key")
        return Principal(owner.owner_id, "api_key", key_id=owner.key_id)
    try:
        claims = decode_user_token(token, ctx.settings.secret_key.get_secret_value())
    except jwt.InvalidTokenError:
        raise unauthorized("invalid or expired token") from None
    return Principal(str(claims["sub"]), "user", is_admin=bool(claims.get("adm")))


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def _user(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "user":
        raise ApiError(403, "user_required", "this endpoint needs a user session (JWT), not an API key")
    return principal


CurrentUser = Annotated[Principal, Depends(_user)]


async def _admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise ApiError(403, "admin_required", "only an admin can do this")
    return user


CurrentAdmin = Annotated[Principal, Depends(_admin)]
