from __future__ import annotations

from fastapi import APIRouter, Request

from sayso_api import auth
from sayso_api.deps import Ctx, CurrentAdmin, CurrentUser
from sayso_api.schemas import DataList, LoginIn, LoginOut, UserIn, UserOut
from sayso_common.credentials import hash_secret, issue_user_token
from sayso_common.errors import ErrorCode, UnauthorizedError
from sayso_common.mongo import USERS, collection

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/login", response_model=LoginOut, responses={401: {}, 429: {}})
async def login(body: LoginIn, request: Request, ctx: Ctx) -> LoginOut:
    """Exchange e-mail and password for a user JWT. Throttled per e-mail and per client address."""
    email = auth.normalise_email(body.email)
    client = request.client.host if request.client else "unknown"
    s = ctx.settings
    limits = {
        f"email:{hash_secret(email)}": s.login_max_failures,
        f"addr:{client}": s.login_max_failures_per_address,
    }
    keys = list(limits)
    await auth.reserve_attempt(ctx.db, limits, s.login_window_seconds)
    user = await collection(ctx.db, USERS).find_one({"email": email})
    if (
        not await auth.verify_bounded(ctx.passwords, user["password_hash"] if user else None, body.password)
        or not user
    ):
        raise UnauthorizedError("wrong e-mail or password", ErrorCode.INVALID_CREDENTIALS)
    await auth.release_attempt(ctx.db, keys, s.login_window_seconds)
    token = issue_user_token(user["_id"], ctx.jwt_keys, s.jwt_ttl_seconds, bool(user.get("is_admin")))
    return LoginOut(token=token, expires_in=s.jwt_ttl_seconds, user=auth.user_view(user))


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser, ctx: Ctx) -> UserOut:
    doc = await collection(ctx.db, USERS).find_one({"_id": user.owner_id})
    if doc is None:
        raise UnauthorizedError("the user of this token no longer exists")
    return auth.user_view(doc)


@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: UserIn, _: CurrentAdmin, ctx: Ctx) -> UserOut:
    """Admins create users; each user owns their own agents, messages and keys."""
    doc = await auth.create_user(ctx.db, ctx.passwords, body.email, body.password, body.is_admin)
    return auth.user_view(doc)


@router.get("/users", response_model=DataList[UserOut])
async def list_users(_: CurrentAdmin, ctx: Ctx) -> DataList[UserOut]:
    docs = await collection(ctx.db, USERS).find({}).sort("created_at", 1).limit(1000).to_list()
    return DataList(data=[auth.user_view(d) for d in docs])
