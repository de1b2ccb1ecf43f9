"""The pull feed: events for clients that cannot receive webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import feed
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.feed import DEFAULT_LIMIT, FEED_TYPES, MAX_LIMIT, MAX_TYPES_CHARS, MAX_WAIT_MS, FeedPage

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.get("/feed", response_model=FeedPage, responses={422: {}})
async def read_feed(
    who: CurrentPrincipal,
    ctx: Ctx,
    channel: Annotated[
        str | None, Query(max_length=100, description="One channel; absent: your whole account")
    ] = None,
    after: Annotated[
        str | None, Query(max_length=100, description="The nextCursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    wait: Annotated[
        int, Query(ge=0, le=MAX_WAIT_MS, description="ms an empty page may wait for the next event")
    ] = 0,
    types: Annotated[
        str | None,
        Query(
            max_length=MAX_TYPES_CHARS,
            description=f"Comma-separated event types or groups ({', '.join(FEED_TYPES)}; review:* …); "
            "absent: every type",
        ),
    ] = None,
) -> FeedPage:
    """Events stored after the cursor, oldest first (each channel's in the order published). Keep
    ``nextCursor`` and pass it back as ``after``: at least once, so drop repeats by event ``id``.
    Events are kept for the retention (SAYSO_RETENTION_DAYS). With ``wait``, an empty page is held until an event can be served
    (or the wait runs out). With ``types``, only events of those types; the cursor still moves past
    the others."""
    kinds = feed.parse_types(types)
    if channel is not None:
        await ctx.readable_channel(who, channel)  # 404 unless its owner or a member
        scope = {"channel_id": channel}
    else:
        scope = {"owner_id": who.owner_id}
    if wait and ctx.feed_waiters is not None:
        return await feed.wait_page(ctx.db, ctx.feed_waiters, scope, who.owner_id, after, limit, wait, kinds)
    return await feed.page(ctx.db, scope, who.owner_id, after, limit, kinds)
