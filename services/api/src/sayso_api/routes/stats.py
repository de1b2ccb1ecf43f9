"""Read-only operator numbers for the caller's own channels (the web app's operator page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import stats
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.stats import Overview, PendingReviews

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])


@router.get("/overview", response_model=Overview)
async def overview(
    who: CurrentPrincipal,
    ctx: Ctx,
    window: Annotated[int, Query(ge=60, le=stats.WINDOW_MAX, description="Seconds to look back")] = (
        stats.WINDOW_DEFAULT
    ),
) -> Overview:
    """Webhook deliveries per second, failures, estimated open circuits per host, and the
    review backlog, over the last ``window`` seconds."""
    return await stats.overview(ctx.db, who.owner_id, ctx.settings.circuit_policy(), window)


@router.get("/pending", response_model=PendingReviews)
async def pending(who: CurrentPrincipal, ctx: Ctx) -> PendingReviews:
    """Pending reviews: how many per channel (shared channels included), and how old the oldest
    one is."""
    return await stats.pending_reviews(ctx.db, await ctx.reach(who))
