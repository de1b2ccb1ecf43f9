"""Scoped read-only tokens for embedding (``sayso_common.scoped_tokens``): created, listed and
revoked by the owner of their channels, with a user session. The token is shown once."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from sayso_api.deps import Ctx, CurrentUser
from sayso_api.schemas import DataList, ScopedTokenCreated, ScopedTokenIn, ScopedTokenOut
from sayso_common.clock import utcnow
from sayso_common.credentials import display_prefix, hash_secret
from sayso_common.documents import ScopedTokenDoc
from sayso_common.errors import NotFoundError
from sayso_common.ids import new_id
from sayso_common.mongo import AGENTS, SCOPED_TOKENS, collection
from sayso_common.scoped_tokens import generate_scoped_token

router = APIRouter(prefix="/api/v1/tokens", tags=["api keys"])


def token_out(doc: ScopedTokenDoc) -> ScopedTokenOut:
    return ScopedTokenOut(
        id=doc["_id"],
        prefix=doc.get("prefix", ""),
        name=doc.get("name"),
        channel_ids=doc["channel_ids"],
        answer=bool(doc.get("answer")),
        created_at=doc["created_at"],
        expires_at=doc["expires_at"],
    )


@router.post("", status_code=201, response_model=ScopedTokenCreated, responses={404: {}})
async def create_token(body: ScopedTokenIn, user: CurrentUser, ctx: Ctx) -> ScopedTokenCreated:
    """A token that reads the messages and reviews of some of your channels and opens their
    streams, and nothing else (``answer: true`` also lets it answer their reviews), until
    ``expiresInSeconds`` from now. Shown once; only its hash is stored."""
    wanted = list(dict.fromkeys(body.channel_ids))
    owned = set(
        await collection(ctx.db, AGENTS).distinct("_id", {"_id": {"$in": wanted}, "owner_id": user.owner_id})
    )
    for i, channel in enumerate(body.channel_ids):
        if channel not in owned:
            raise NotFoundError(f"channel {channel}", f"channelIds[{i}]")
    token = generate_scoped_token()
    now = utcnow()
    doc: ScopedTokenDoc = {
        "_id": new_id("sct"),
        "owner_id": user.owner_id,
        "token_hash": hash_secret(token),
        "prefix": display_prefix(token),
        "name": body.name,
        "channel_ids": wanted,
        "answer": body.answer,
        "created_at": now,
        "expires_at": now + timedelta(seconds=body.expires_in_seconds),
        "revoked_at": None,
    }
    await collection(ctx.db, SCOPED_TOKENS).insert_one(doc)
    return ScopedTokenCreated(token=token, **token_out(doc).model_dump())


@router.get("", response_model=DataList[ScopedTokenOut])
async def list_tokens(user: CurrentUser, ctx: Ctx) -> DataList[ScopedTokenOut]:
    """Your tokens that are neither revoked nor expired, newest first."""
    docs = await (
        collection(ctx.db, SCOPED_TOKENS)
        .find({"owner_id": user.owner_id, "revoked_at": None, "expires_at": {"$gt": utcnow()}})
        .sort("created_at", -1)
        .limit(1000)
        .to_list()
    )
    return DataList(data=[token_out(d) for d in docs])


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Revoke at once here; other replicas refuse it within the auth cache TTL (5 s), and its open
    streams end within the realtime gateway's revalidation period."""
    doc = await collection(ctx.db, SCOPED_TOKENS).find_one_and_update(
        {"_id": token_id, "owner_id": user.owner_id, "revoked_at": None},
        {"$set": {"revoked_at": utcnow()}},
    )
    if doc is None:
        raise NotFoundError("token")
    ctx.tokens.forget(doc["token_hash"])
    return Response(status_code=204)
