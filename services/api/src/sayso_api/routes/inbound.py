"""Inbound token webhooks (Chatalot): a secret URL that posts into one channel."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field, field_validator

from sayso_api import agents, inbound
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.schemas import DataList, InboundWebhookCreated, InboundWebhookOut, _StrictIn, check_url
from sayso_common.errors import ErrorCode, InvalidError

router = APIRouter(tags=["inbound webhooks"])


class WebhookIn(_StrictIn):
    name: str = Field(min_length=1, max_length=64)
    avatar_url: str | None = None

    _avatar = field_validator("avatar_url")(check_url)


class WebhookPatch(_StrictIn):
    # Accepts Chatalot's snake_case avatar_url as well as avatarUrl.
    name: str | None = Field(default=None, min_length=1, max_length=64)
    avatar_url: str | None = None
    active: bool | None = None

    _avatar = field_validator("avatar_url")(check_url)


def _url(ctx: Ctx, token: str) -> str:
    return f"{ctx.settings.public_url.rstrip('/')}/api/webhooks/execute/{token}"


@router.post(
    "/api/v1/agents/{agent_id}/inbound-webhooks", status_code=201, response_model=InboundWebhookCreated
)
async def create_webhook(
    agent_id: str, body: WebhookIn, who: CurrentPrincipal, ctx: Ctx
) -> InboundWebhookCreated:
    """Create a token URL that posts into this channel. URL and token are shown only here."""
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    doc, token = await inbound.create(ctx.db, who.owner_id, agent_id, body.name, body.avatar_url)
    return InboundWebhookCreated(**inbound.view(doc).model_dump(), token=token, url=_url(ctx, token))


@router.get("/api/v1/agents/{agent_id}/inbound-webhooks", response_model=DataList[InboundWebhookOut])
async def list_webhooks(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> DataList[InboundWebhookOut]:
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    return DataList(
        data=[inbound.view(d) for d in await inbound.list_for_channel(ctx.db, who.owner_id, agent_id)]
    )


@router.patch("/api/webhooks/{webhook_id}", response_model=InboundWebhookOut)
async def patch_webhook(
    webhook_id: str, body: WebhookPatch, who: CurrentPrincipal, ctx: Ctx
) -> InboundWebhookOut:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "active"):
        if name in changes and changes[name] is None:
            raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{name} cannot be null", name)
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, changes))


@router.post("/api/webhooks/{webhook_id}/enable", response_model=InboundWebhookOut)
async def enable_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> InboundWebhookOut:
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, {"active": True}))


@router.post("/api/webhooks/{webhook_id}/disable", response_model=InboundWebhookOut)
async def disable_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> InboundWebhookOut:
    return inbound.view(await inbound.update(ctx.db, who.owner_id, webhook_id, {"active": False}))


@router.delete("/api/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    await inbound.delete(ctx.db, who.owner_id, webhook_id)
    return Response(status_code=204)


@router.post(
    "/api/webhooks/execute/{token}",
    status_code=200,
    response_class=Response,  # documented as it is: 200 with an empty body, as Chatalot answers
    responses={200: {"description": "Posted (empty body)"}, 404: {}, 422: {}, 429: {}},
)
async def execute_webhook(token: str, body: inbound.ExecuteIn, ctx: Ctx) -> Response:
    """Post ``{content, username?, avatar_url?}`` into the webhook's channel. No other credential:
    the token in the URL is the secret. 200 with an empty body on success."""
    await inbound.execute(ctx, token, body)
    return Response(status_code=200)
