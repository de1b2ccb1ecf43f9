from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import messages
from sayso_api.deps import Ctx, CurrentAnswerer, CurrentReader, CurrentUser
from sayso_api.schemas import MessagePage, RespondIn
from sayso_common.http_errors import not_found
from sayso_common.views import MessageView, message_view_for

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])

Limit = Annotated[int, Query(ge=1, le=200)]  # the human inbox keeps its pagination
Cursor = Annotated[str | None, Query(max_length=100)]


@router.get("/pending", response_model=list[MessageView])
async def pending(
    who: CurrentReader,
    ctx: Ctx,
    channel: Annotated[str | None, Query(max_length=100)] = None,
) -> list[MessageView]:
    """Every pending review of one channel (or of all the caller's channels, shared ones
    included), newest first: a bare array, as Placet answers (at most 1,000; the inbox below
    pages)."""
    if channel is not None:
        await ctx.readable_channel(who, channel)
    data, _ = await messages.list_reviews(ctx.db, await ctx.reach(who), channel, 1000, None, who.reader_id)
    return data


@router.get("/inbox", response_model=MessagePage)
async def inbox(user: CurrentUser, ctx: Ctx, limit: Limit = 50, cursor: Cursor = None) -> MessagePage:
    """A human's inbox: pending reviews across all their channels and those shared with them."""
    data, nxt = await messages.list_reviews(ctx.db, await ctx.reach(user), None, limit, cursor)
    return MessagePage(data=data, next_cursor=nxt)


@router.get("/{message_id}", response_model=MessageView)
async def get_review(
    message_id: str,
    who: CurrentReader,
    ctx: Ctx,
    channel: Annotated[str | None, Query(max_length=100)] = None,
) -> MessageView:
    """The message carrying the review (the review id is the message id, as in Placet)."""
    doc = await messages.get_message(ctx.db, await ctx.reach(who), message_id, channel)
    if not doc.get("review"):
        raise not_found("review")
    return message_view_for(doc, who.reader_id)


@router.post("/{message_id}/respond", response_model=MessageView, responses={409: {}, 422: {}})
async def respond(message_id: str, body: RespondIn, user: CurrentAnswerer, ctx: Ctx) -> MessageView:
    """Answer a review. The first response wins; later ones (or after expiry) get 409. On a
    quorum review each reviewer's response is a vote (a second vote by the same reviewer: 409)."""
    view = await messages.respond(
        ctx.db,
        user,
        message_id,
        user.owner_id,
        body.response,
        body.feedback,
        body.modified_file_ids,
    )
    ctx.outbox_written()
    return view
