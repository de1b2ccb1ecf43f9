"""Inbound token webhooks (Chatalot compatible): a secret URL that posts into one channel.

The token is 64 URL-safe random characters, shown once, stored as SHA-256. Unknown and disabled
tokens get the same 404 after the same single indexed lookup, so a caller learns nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sayso_api.context import ApiContext
from sayso_api.messages import create_message
from sayso_api.schemas import InboundWebhookOut, MessageIn, check_url
from sayso_common import ratelimit
from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from sayso_common.documents import InboundWebhookDoc
from sayso_common.errors import NotFoundError
from sayso_common.ids import new_id
from sayso_common.mongo import INBOUND_WEBHOOKS, Database, collection


class ExecuteIn(BaseModel):
    """Chatalot's payload. Unknown fields are ignored so Discord/Slack-style senders still work."""

    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1, max_length=4000)
    username: str | None = Field(default=None, min_length=1, max_length=64)
    avatar_url: str | None = None

    _avatar = field_validator("avatar_url")(check_url)


def new_token() -> str:
    return secrets.token_urlsafe(48)  # 48 bytes -> 64 URL-safe characters


async def create(
    db: Database, owner_id: str, channel_id: str, name: str, avatar_url: str | None
) -> tuple[InboundWebhookDoc, str]:
    token = new_token()
    doc: InboundWebhookDoc = {
        "_id": new_id("whk"),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "name": name,
        "avatar_url": avatar_url,
        "active": True,
        "token_hash": hash_secret(token),
        "created_at": utcnow(),
        "last_used_at": None,
    }
    await collection(db, INBOUND_WEBHOOKS).insert_one(doc)
    return doc, token


def view(doc: InboundWebhookDoc) -> InboundWebhookOut:
    return InboundWebhookOut(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        name=doc["name"],
        avatar_url=doc.get("avatar_url"),
        active=doc["active"],
        created_at=doc["created_at"],
        last_used_at=doc.get("last_used_at"),
    )


async def list_for_channel(db: Database, owner_id: str, channel_id: str) -> list[InboundWebhookDoc]:
    return (
        await collection(db, INBOUND_WEBHOOKS)
        .find({"owner_id": owner_id, "channel_id": channel_id})
        .sort("created_at", 1)
        .to_list()
    )


async def update(db: Database, owner_id: str, webhook_id: str, changes: dict[str, Any]) -> InboundWebhookDoc:
    if not changes:
        doc = await collection(db, INBOUND_WEBHOOKS).find_one({"_id": webhook_id, "owner_id": owner_id})
    else:
        doc = await collection(db, INBOUND_WEBHOOKS).find_one_and_update(
            {"_id": webhook_id, "owner_id": owner_id}, {"$set": changes}, return_document=True
        )
    if doc is None:
        raise NotFoundError("webhook")
    return doc


async def delete(db: Database, owner_id: str, webhook_id: str) -> None:
    result = await collection(db, INBOUND_WEBHOOKS).delete_one({"_id": webhook_id, "owner_id": owner_id})
    if result.deleted_count == 0:
        raise NotFoundError("webhook")


async def execute(ctx: ApiContext, token: str, body: ExecuteIn) -> None:
    """Post a token webhook's payload into its channel (rate limited per webhook)."""
    hook = await resolve(ctx.db, token)
    await ratelimit.hit(
        ctx.db,
        f"whk:{hook['_id']}",
        ctx.settings.inbound_rate_per_minute,
        setting="SAYSO_INBOUND_RATE_PER_MINUTE",
        what="this webhook",
    )
    await create_message(
        ctx.db,
        ctx.settings,
        ctx.box,
        hook["owner_id"],
        MessageIn(channel_id=hook["channel_id"], text=body.content),
        sender_type="webhook",
        sender_name=body.username or hook["name"],
        sender_avatar_url=body.avatar_url or hook.get("avatar_url"),
    )
    await collection(ctx.db, INBOUND_WEBHOOKS).update_one(
        {"_id": hook["_id"]}, {"$set": {"last_used_at": utcnow()}}
    )


async def resolve(db: Database, token: str) -> InboundWebhookDoc:
    """The active webhook for ``token``, or the one 404 every failure shares."""
    doc = None
    if 20 <= len(token) <= 200:
        doc = await collection(db, INBOUND_WEBHOOKS).find_one({"token_hash": hash_secret(token)})
    if doc is None or not doc.get("active"):
        raise NotFoundError("webhook", message="unknown or disabled webhook")
    return doc
