"""Notification preferences (per user, per channel) and the notification log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import preferences
from sayso_api.deps import Ctx, CurrentPrincipal, CurrentUser
from sayso_api.preferences import (
    ChannelSlackIn,
    ChannelSlackOut,
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
)
from sayso_api.schemas import DataList

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get("/users/me/notifications", response_model=PreferencesOut)
async def my_preferences(user: CurrentUser, ctx: Ctx) -> PreferencesOut:
    """How you are told about reviews: e-mail on or off, your Slack webhook, quiet hours."""
    return await preferences.get_preferences(ctx.db, user.owner_id)


@router.put("/users/me/notifications", response_model=PreferencesOut, responses={422: {}})
async def set_my_preferences(body: PreferencesIn, user: CurrentUser, ctx: Ctx) -> PreferencesOut:
    """Change what is given; ``null`` clears a field. Quiet hours hold back every notice until
    they end, escalations too unless ``escalationsDuringQuietHours`` is on."""
    return await preferences.set_preferences(ctx.db, ctx.box, user.owner_id, body)


@router.get("/agents/{agent_id}/notifications", response_model=ChannelSlackOut)
async def channel_notifications(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> ChannelSlackOut:
    """The channel's own Slack webhook (its owner's to set), told of every review besides people."""
    return await preferences.get_channel_slack(ctx.db, who.owner_id, agent_id)


@router.put("/agents/{agent_id}/notifications", response_model=ChannelSlackOut, responses={422: {}})
async def set_channel_notifications(
    agent_id: str, body: ChannelSlackIn, who: CurrentPrincipal, ctx: Ctx
) -> ChannelSlackOut:
    return await preferences.set_channel_slack(ctx.db, ctx.box, who.owner_id, agent_id, body)


@router.get("/notifications", response_model=DataList[NotificationOut])
async def notification_log(
    who: CurrentPrincipal,
    ctx: Ctx,
    message: Annotated[str | None, Query(max_length=100, description="Only this message's")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DataList[NotificationOut]:
    """E-mail and Slack notifications about your channels' reviews with their attempts, newest
    first: what was sent, what waits (reminders, escalations, quiet hours), what failed and why."""
    return DataList(data=await preferences.list_notifications(ctx.db, who.owner_id, message, limit))
