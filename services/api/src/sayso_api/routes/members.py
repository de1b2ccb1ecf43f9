"""Who else reviews a channel. Owner only, with a user session: an API key (an agent) cannot
share its channel, and a member cannot add or remove anyone (404, as for any channel not theirs)."""

from __future__ import annotations

from fastapi import APIRouter

from sayso_api import members
from sayso_api.deps import Ctx, CurrentUser
from sayso_api.schemas import DataList, DeletedOut, MemberIn, MemberOut
from sayso_common.documents import MemberDoc

router = APIRouter(prefix="/api/v1/agents/{agent_id}/members", tags=["agents"])


def member_out(doc: MemberDoc) -> MemberOut:
    return MemberOut(user_id=doc["user_id"], email=doc["email"], added_at=doc["added_at"])


@router.get("", response_model=DataList[MemberOut])
async def list_members(agent_id: str, user: CurrentUser, ctx: Ctx) -> DataList[MemberOut]:
    return DataList(data=[member_out(m) for m in await members.list_members(ctx.db, user.owner_id, agent_id)])


@router.post("", status_code=201, response_model=MemberOut, responses={404: {}, 409: {}})
async def add_member(agent_id: str, body: MemberIn, user: CurrentUser, ctx: Ctx) -> MemberOut:
    """Share the channel with an existing user (by e-mail): they see it in their inbox and
    sockets, and answer and vote on its reviews. 404 names ``email`` when no user has it."""
    return member_out(await members.add_member(ctx.db, user.owner_id, agent_id, body.email))


@router.delete("/{user_id}", response_model=DeletedOut)
async def remove_member(agent_id: str, user_id: str, user: CurrentUser, ctx: Ctx) -> DeletedOut:
    """Stop sharing the channel with this user; their open live streams leave it within the
    realtime gateway's revalidation period, their requests at once. Notices still waiting for
    them (reminders, escalations) are cancelled, and the answer links and Slack buttons they were
    sent answer nothing any more."""
    await members.remove_member(ctx.db, user.owner_id, agent_id, user_id)
    return DeletedOut()
