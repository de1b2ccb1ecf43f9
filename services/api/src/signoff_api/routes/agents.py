from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from signoff_api import agents
from signoff_api.deps import Ctx, CurrentPrincipal
from signoff_api.schemas import AgentCreated, AgentIn, AgentOut, AgentPatch, PingIn

router = APIRouter(prefix="/api/v1", tags=["agents"])


@router.post("/agents", status_code=201, response_model=AgentCreated)
async def create_agent(body: AgentIn, who: CurrentPrincipal, ctx: Ctx) -> AgentCreated:
    """Create an agent. Its id is the ``channelId`` messages are posted to. The response carries
    the webhook signing secret once."""
    doc, secret = await agents.create_agent(ctx.db, ctx.box, who.owner_id, body)
    return AgentCreated(webhook_secret=secret, **agents.agent_out(doc).model_dump())


@router.get("/agents")
async def list_agents(who: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    docs = await agents.list_agents(ctx.db, who.owner_id)
    return {"data": [agents.agent_out(d).model_dump() for d in docs]}


@router.get("/agents/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    return agents.agent_out(await agents.get_agent(ctx.db, who.owner_id, agent_id))


@router.patch("/agents/{agent_id}", response_model=AgentOut)
async def patch_agent(agent_id: str, body: AgentPatch, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    return agents.agent_out(await agents.patch_agent(ctx.db, ctx.box, who.owner_id, agent_id, body))


@router.delete("/agents/{agent_id}", status_code=204)
async def delete_agent(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    await agents.delete_agent(ctx.db, who.owner_id, agent_id)
    ctx.channels.forget(agent_id)
    return Response(status_code=204)


@router.post("/status/ping", response_model=AgentOut)
async def status_ping(body: PingIn, who: CurrentPrincipal, ctx: Ctx) -> AgentOut:
    """Report the agent's state; updates its last activity and emits ``agent.status``."""
    return agents.agent_out(await agents.ping(ctx.db, who.owner_id, body))
