from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from sayso_api import agents
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.schemas import (
    AgentCreated,
    AgentIn,
    AgentOut,
    AgentPatch,
    CommandsIn,
    DeletedOut,
    DeleteWebhookIn,
    PingIn,
    SetWebhookIn,
)

router = APIRouter(prefix="/api/v1", tags=["agents"])


@router.post("/agents", status_code=201, response_model=AgentCreated)
async def create_agent(body: AgentIn, who: CurrentPrincipal, ctx: Ctx) -> AgentCreated:
    """Create an agent. Its id is the ``channelId`` messages are posted to. The response carries
    the webhook signing secret once."""
    doc, secret = await agents.create_agent(ctx.db, ctx.box, who.owner_id, body)
    return AgentCreated(webhook_secret=secret, **agents.agent_out(doc).model_dump())


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(who: CurrentPrincipal, ctx: Ctx) -> list[AgentOut]:
    """Every agent of the caller (and, for a user, those shared with them: ``role: member``),
    oldest first: a bare array, as Placet answers."""
    return await agents.visible_agents(ctx.db, await ctx.reach(who))


@router.post("/agents/setWebhook", response_model=AgentOut)
async def set_webhook(body: SetWebhookIn, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    """The agent registers its default webhook URL (with optional headers and Basic auth)."""
    return agents.agent_out(await agents.set_webhook(ctx.db, ctx.box, who.owner_id, body))


@router.post("/agents/deleteWebhook", response_model=AgentOut)
async def delete_webhook(body: DeleteWebhookIn, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    """Remove the channel's default webhook URL, headers and auth."""
    return agents.agent_out(await agents.delete_webhook(ctx.db, ctx.box, who.owner_id, body.channel_id))


@router.put("/agents/{agent_id}/commands", response_model=AgentOut)
async def set_commands(agent_id: str, body: CommandsIn, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    """Replace the slash commands the agent offers in the inbox."""
    return agents.agent_out(await agents.set_commands(ctx.db, who.owner_id, agent_id, body))


@router.get("/agents/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    return await agents.visible_agent(ctx.db, await ctx.reach(who), agent_id)


@router.patch("/agents/{agent_id}", response_model=AgentOut)
async def patch_agent(agent_id: str, body: AgentPatch, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    return agents.agent_out(await agents.patch_agent(ctx.db, ctx.box, who.owner_id, agent_id, body))


@router.delete("/agents/{agent_id}", response_model=DeletedOut)
async def delete_agent(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> DeletedOut:
    retention = timedelta(seconds=ctx.settings.deleted_channel_retention_seconds)
    await agents.delete_agent(ctx.db, who.owner_id, agent_id, retention)
    ctx.channels.forget(agent_id)
    ctx.outbox_written()
    return DeletedOut()


@router.post("/status/ping", status_code=201, response_model=AgentOut)
async def status_ping(body: PingIn, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    """Report the agent's state; updates its last activity and emits ``agent.status``."""
    return agents.agent_out(await agents.ping(ctx.db, who.owner_id, body))
