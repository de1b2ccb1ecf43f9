"""Inbound webhooks: token URLs (Chatalot) and signed triggers (Planasonix / Standard Webhooks)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from signoff_api import agents, inbound, ratelimit, triggers
from signoff_api.deps import Ctx, CurrentPrincipal
from signoff_api.messages import create_message
from signoff_api.schemas import MessageIn, check_url
from signoff_common.clock import utcnow
from signoff_common.http_errors import ApiError
from signoff_common.ids import new_id
from signoff_common.mongo import INBOUND_WEBHOOKS, TRIGGERS

router = APIRouter(tags=["inbound webhooks"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    avatar_url: str | None = None

    _avatar = field_validator("avatar_url")(check_url)


class WebhookPatch(BaseModel):
    # Accepts Chatalot's snake_case avatar_url as well as avatarUrl.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=64)
    avatar_url: str | None = None
    active: bool | None = None

    _avatar = field_validator("avatar_url")(check_url)


def _url(ctx: Ctx, token: str) -> str:
    return f"{ctx.settings.public_url.rstrip('/')}/api/webhooks/execute/{token}"


@router.post("/api/v1/agents/{agent_id}/inbound-webhooks", status_code=201)
async def create_webhook(agent_id: str, body: WebhookIn, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    """Create a token URL that posts into this channel. URL and token are shown only here."""
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    doc, token = await inbound.create(ctx.db, who.owner_id, agent_id, body.name, body.avatar_url)
    return {**inbound.view(doc), "token": token, "url": _url(ctx, token)}


@router.get("/api/v1/agents/{agent_id}/inbound-webhooks")
async def list_webhooks(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    return {"data": [inbound.view(d) for d in await inbound.list_for_channel(ctx.db, who.owner_id, agent_id)]}


@router.patch("/api/webhooks/{webhook_id}")
async def patch_webhook(
    webhook_id: str, body: WebhookPatch, who: CurrentPrincipal, ctx: Ctx
) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "active"):
        if name in changes and changes[name] is None:
            raise ApiError(422, "validation_error", f"{name} cannot be null", name)
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, changes))


@router.post("/api/webhooks/{webhook_id}/enable")
async def enable_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, {"active": True}))


@router.post("/api/webhooks/{webhook_id}/disable")
async def disable_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, {"active": False}))


@router.delete("/api/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    await inbound.delete(ctx.db, who.owner_id, webhook_id)
    return Response(status_code=204)


@router.post("/api/webhooks/execute/{token}", status_code=200, responses={404: {}, 422: {}, 429: {}})
async def execute_webhook(token: str, body: inbound.ExecuteIn, ctx: Ctx) -> Response:
    """Post ``{content, username?, avatar_url?}`` into the webhook's channel. No other credential:
    the token in the URL is the secret. 200 with an empty body on success."""
    hook = await inbound.resolve(ctx.db, token)
    await ratelimit.hit(ctx.db, f"whk:{hook['_id']}", ctx.settings.inbound_rate_per_minute)
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
    await ctx.db[INBOUND_WEBHOOKS].update_one({"_id": hook["_id"]}, {"$set": {"last_used_at": utcnow()}})
    return Response(status_code=200)


# --- signed triggers -----------------------------------------------------------------------


@router.post("/api/v1/agents/{agent_id}/triggers", status_code=201)
async def create_trigger(
    agent_id: str, body: triggers.TriggerIn, who: CurrentPrincipal, ctx: Ctx
) -> dict[str, Any]:
    """Create a signed trigger. The ``whsec_`` secret is shown only here."""
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    doc, secret = await triggers.create(ctx.db, ctx.box, who.owner_id, agent_id, body)
    return {**triggers.view(doc, ctx.settings.public_url), "secret": secret}


@router.get("/api/v1/agents/{agent_id}/triggers")
async def list_triggers(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    docs = (
        await ctx.db[TRIGGERS]
        .find({"owner_id": who.owner_id, "channel_id": agent_id})
        .sort("created_at", 1)
        .to_list()
    )
    return {"data": [triggers.view(d, ctx.settings.public_url) for d in docs]}


@router.patch("/api/v1/triggers/{trigger_id}")
async def patch_trigger(
    trigger_id: str, body: triggers.TriggerPatch, who: CurrentPrincipal, ctx: Ctx
) -> dict[str, Any]:
    return triggers.view(
        await triggers.patch(ctx.db, who.owner_id, trigger_id, body), ctx.settings.public_url
    )


@router.post("/api/v1/triggers/{trigger_id}/rotate")
async def rotate_trigger(trigger_id: str, who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    """New secret, shown once; the previous one stays valid for the grace period (24 h default)."""
    doc, secret = await triggers.rotate(
        ctx.db, ctx.box, who.owner_id, trigger_id, ctx.settings.trigger_rotation_grace_seconds
    )
    return {**triggers.view(doc, ctx.settings.public_url), "secret": secret}


@router.delete("/api/v1/triggers/{trigger_id}", status_code=204)
async def delete_trigger(trigger_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    result = await ctx.db[TRIGGERS].delete_one({"_id": trigger_id, "owner_id": who.owner_id})
    if result.deleted_count == 0:
        raise ApiError(404, "not_found", "trigger not found")
    return Response(status_code=204)


TRIGGER_BODY = {
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    "required": True,
}


@router.post(
    "/api/triggers/{trigger_id}",
    status_code=202,
    openapi_extra={"requestBody": TRIGGER_BODY},
    responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}},
)
async def fire_trigger(trigger_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Signed with Standard Webhooks headers over the raw body. Answers the correlation id that
    ``GET /api/v1/messages?channel=&correlationId=`` finds; a repeated ``webhook-id`` returns the
    original one and creates nothing."""
    s = ctx.settings
    doc = await ctx.db[TRIGGERS].find_one({"_id": trigger_id})
    if doc is None or not doc.get("active"):
        raise ApiError(404, "not_found", "unknown or disabled trigger")
    if not triggers.address_allowed(doc["allow_ips"], request.client.host if request.client else None):
        raise ApiError(403, "address_not_allowed", "this address may not call the trigger")
    raw = await request.body()
    if len(raw) > s.trigger_max_body_bytes:
        raise ApiError(
            413, "payload_too_large", f"trigger bodies are limited to {s.trigger_max_body_bytes} bytes"
        )
    secrets_ = triggers.valid_secrets(doc, ctx.box, utcnow())
    webhook_id = triggers.verify(
        {k.lower(): v for k, v in request.headers.items()}, raw, secrets_, s.trigger_tolerance_seconds
    )
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid_json", "request body is not valid JSON") from None
    fields = triggers.map_body(payload, triggers.Mapping.model_validate(doc["mapping"]), doc["required"])
    try:
        message = MessageIn.model_validate(
            {**fields, "channelId": doc["channel_id"], "clientId": f"trigger:{webhook_id}"}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, "invalid_mapping", f"mapped {where}: {first['msg']}", where) from None
    view, replayed = await create_message(
        ctx.db,
        s,
        ctx.box,
        doc["owner_id"],
        message,
        sender_type="webhook",
        sender_name=doc["name"],
        correlation_id=new_id("cor"),
    )
    await ctx.db[TRIGGERS].update_one({"_id": trigger_id}, {"$set": {"last_used_at": utcnow()}})
    return {"correlationId": view.correlation_id, "messageId": view.id, "replayed": replayed}
