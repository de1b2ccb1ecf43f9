"""Signed triggers (Planasonix / Standard Webhooks): outside systems post mapped JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sayso_api import agents, triggers
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.schemas import DataList, TriggerCreated, TriggerFired, TriggerOut

router = APIRouter(tags=["inbound webhooks"])


@router.post("/api/v1/agents/{agent_id}/triggers", status_code=201, response_model=TriggerCreated)
async def create_trigger(
    agent_id: str, body: triggers.TriggerIn, who: CurrentPrincipal, ctx: Ctx
) -> TriggerCreated:
    """Create a signed trigger. The ``whsec_`` secret is shown only here."""
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    doc, secret = await triggers.create(ctx.db, ctx.box, who.owner_id, agent_id, body)
    return TriggerCreated(**triggers.view(doc, ctx.settings.public_url).model_dump(), secret=secret)


@router.get("/api/v1/agents/{agent_id}/triggers", response_model=DataList[TriggerOut])
async def list_triggers(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> DataList[TriggerOut]:
    await agents.get_agent(ctx.db, who.owner_id, agent_id)
    docs = await triggers.list_for_channel(ctx.db, who.owner_id, agent_id)
    return DataList(data=[triggers.view(d, ctx.settings.public_url) for d in docs])


@router.patch("/api/v1/triggers/{trigger_id}", response_model=TriggerOut)
async def patch_trigger(
    trigger_id: str, body: triggers.TriggerPatch, who: CurrentPrincipal, ctx: Ctx
) -> TriggerOut:
    return triggers.view(
        await triggers.patch(ctx.db, who.owner_id, trigger_id, body), ctx.settings.public_url
    )


@router.post("/api/v1/triggers/{trigger_id}/rotate", response_model=TriggerCreated)
async def rotate_trigger(trigger_id: str, who: CurrentPrincipal, ctx: Ctx) -> TriggerCreated:
    """New secret, shown once; the previous one stays valid for the grace period (24 h default)."""
    doc, secret = await triggers.rotate(
        ctx.db, ctx.box, who.owner_id, trigger_id, ctx.settings.trigger_rotation_grace_seconds
    )
    return TriggerCreated(**triggers.view(doc, ctx.settings.public_url).model_dump(), secret=secret)


@router.delete("/api/v1/triggers/{trigger_id}", status_code=204)
async def delete_trigger(trigger_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    await triggers.delete(ctx.db, who.owner_id, trigger_id)
    return Response(status_code=204)


TRIGGER_BODY = {
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    "required": True,
}


@router.post(
    "/api/triggers/{trigger_id}",
    status_code=202,
    response_model=TriggerFired,
    openapi_extra={"requestBody": TRIGGER_BODY},
    responses={401: {}, 403: {}, 404: {}, 413: {}, 422: {}},
)
async def fire_trigger(trigger_id: str, request: Request, ctx: Ctx) -> TriggerFired:
    """Signed with Standard Webhooks headers over the raw body. Answers the correlation id that
    ``GET /api/v1/messages?channel=&correlationId=`` finds; a repeated ``webhook-id`` returns the
    original one and creates nothing."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    client = request.client.host if request.client else None
    return await triggers.fire(ctx, trigger_id, client, headers, await request.body())
