"""Policies: rules that answer a review before a person sees it (sayso_common.policies). Owner
only: a channel's policy is its owner's (members and others get 404, as for every channel
setting), the account's policy the caller's own. Also remembered approvals
(sayso_api.remembered): listed to the channel's owner and members, revoked by the owner (a member
revokes only those their own answers made)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import policies, remembered
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.policies import PolicyIn, PolicyOut, PolicyTestIn, PolicyTestOut, PolicyVersionOut
from sayso_api.remembered import RememberedOut
from sayso_api.schemas import DataList

router = APIRouter(prefix="/api/v1", tags=["policies"])

Limit = Annotated[int, Query(ge=1, le=100, description="How many versions, newest first")]


@router.get("/agents/{agent_id}/policy", response_model=PolicyOut)
async def channel_policy(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> PolicyOut:
    """The channel's policy: its rules are tried before the account's."""
    return await policies.get_policy(ctx.db, who.owner_id, agent_id)


@router.put("/agents/{agent_id}/policy", response_model=PolicyOut, responses={422: {}})
async def set_channel_policy(agent_id: str, body: PolicyIn, who: CurrentPrincipal, ctx: Ctx) -> PolicyOut:
    """Replace the channel's rules as a whole (a new version). A bad rule gets 422 naming it and
    its field, e.g. ``rules[3].match.metadata.amount.$gt``."""
    return await policies.put_policy(ctx.db, who, agent_id, body)


@router.get("/agents/{agent_id}/policy/versions", response_model=DataList[PolicyVersionOut])
async def channel_policy_versions(
    agent_id: str, who: CurrentPrincipal, ctx: Ctx, limit: Limit = 20
) -> DataList[PolicyVersionOut]:
    return DataList(data=await policies.list_versions(ctx.db, who.owner_id, agent_id, limit))


@router.get("/policy", response_model=PolicyOut)
async def account_policy(who: CurrentPrincipal, ctx: Ctx) -> PolicyOut:
    """Your account's policy: tried for every channel of yours, after the channel's own rules."""
    return await policies.get_policy(ctx.db, who.owner_id, None)


@router.put("/policy", response_model=PolicyOut, responses={422: {}})
async def set_account_policy(body: PolicyIn, who: CurrentPrincipal, ctx: Ctx) -> PolicyOut:
    return await policies.put_policy(ctx.db, who, None, body)


@router.get("/policy/versions", response_model=DataList[PolicyVersionOut])
async def account_policy_versions(
    who: CurrentPrincipal, ctx: Ctx, limit: Limit = 20
) -> DataList[PolicyVersionOut]:
    return DataList(data=await policies.list_versions(ctx.db, who.owner_id, None, limit))


@router.post("/policies/test", response_model=PolicyTestOut, responses={422: {}})
async def test_policy(body: PolicyTestIn, who: CurrentPrincipal, ctx: Ctx) -> PolicyTestOut:
    """Dry run: which rule a message would match in the channel and what would happen, with the
    saved policies; nothing is stored or sent."""
    return await policies.dry_run(ctx.db, ctx.settings, who.owner_id, body)


@router.get("/agents/{agent_id}/remembered", response_model=DataList[RememberedOut])
async def remembered_approvals(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> DataList[RememberedOut]:
    """The channel's remembered approvals still in force, newest first (its owner and members)."""
    owner = await ctx.readable_channel(who, agent_id)
    return DataList(data=await remembered.list_live(ctx.db, owner, agent_id))


@router.delete("/agents/{agent_id}/remembered/{remembered_id}", response_model=RememberedOut)
async def revoke_remembered(
    agent_id: str, remembered_id: str, who: CurrentPrincipal, ctx: Ctx
) -> RememberedOut:
    """Revoke a remembered approval at once (an ``approval.revoked`` event): the owner any, a
    member their own; 404 when it is not live or not theirs to revoke."""
    owner = await ctx.readable_channel(who, agent_id)
    revoked = await remembered.revoke(ctx.db, who, owner, agent_id, remembered_id)
    ctx.outbox_written()
    return revoked
