from __future__ import annotations

from fastapi import APIRouter, Response

from sayso_api.deps import Ctx, CurrentUser
from sayso_api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, DataList
from sayso_common.clock import utcnow
from sayso_common.credentials import display_prefix, generate_api_key, hash_secret
from sayso_common.documents import ApiKeyDoc
from sayso_common.errors import NotFoundError
from sayso_common.ids import new_id
from sayso_common.mongo import API_KEYS, collection

router = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])


def key_out(doc: ApiKeyDoc) -> ApiKeyOut:
    return ApiKeyOut(
        id=doc["_id"],
        prefix=doc["prefix"],
        label=doc["label"],
        created_at=doc["created_at"],
        last_used_at=doc.get("last_used_at"),
    )


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyIn, user: CurrentUser, ctx: Ctx) -> ApiKeyCreated:
    """Create an agent API key (``hp_…``). The key is returned once; only its hash is stored."""
    key = generate_api_key()
    doc: ApiKeyDoc = {
        "_id": new_id("key"),
        "owner_id": user.owner_id,
        "key_hash": hash_secret(key),
        "prefix": display_prefix(key),
        "label": body.label,
        "created_at": utcnow(),
        "last_used_at": None,
        "revoked_at": None,
    }
    await collection(ctx.db, API_KEYS).insert_one(doc)
    return ApiKeyCreated(key=key, **key_out(doc).model_dump())


@router.get("", response_model=DataList[ApiKeyOut])
async def list_keys(user: CurrentUser, ctx: Ctx) -> DataList[ApiKeyOut]:
    docs = await (
        collection(ctx.db, API_KEYS)
        .find({"owner_id": user.owner_id, "revoked_at": None})
        .sort("created_at", -1)
        .limit(1000)
        .to_list()
    )
    return DataList(data=[key_out(d) for d in docs])


@router.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Revoke at once here; other replicas stop accepting it within the auth cache TTL (5 s)."""
    doc = await collection(ctx.db, API_KEYS).find_one_and_update(
        {"_id": key_id, "owner_id": user.owner_id, "revoked_at": None},
        {"$set": {"revoked_at": utcnow()}},
    )
    if doc is None:
        raise NotFoundError("API key")
    ctx.keys.forget(doc["key_hash"])
    return Response(status_code=204)
