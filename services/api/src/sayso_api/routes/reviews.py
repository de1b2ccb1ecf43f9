from __future__ import annotations

from typing import Annotated, cast, get_args

from fastapi import APIRouter, Query

from sayso_api import messages
from sayso_api.deps import Ctx, CurrentAnswerer, CurrentReader, CurrentUser
from sayso_api.schemas import MessagePage, RespondIn
from sayso_common.errors import ErrorCode, ForbiddenError, InvalidError, NotFoundError
from sayso_common.views import MessageView, ReviewType, message_view_for

REVIEW_TYPES: tuple[str, ...] = get_args(ReviewType)

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])

Limit = Annotated[int, Query(ge=1, le=200)]  # the human inbox keeps its pagination
Cursor = Annotated[str | None, Query(max_length=100)]


Labels = Annotated[
    list[str] | None,
    Query(max_length=20, description="Repeat it or separate with commas: low, medium, high, critical, none"),
]
Types = Annotated[
    list[str] | None, Query(alias="type", max_length=20, description="Review types; repeat or comma-separate")
]
ChannelId = Annotated[str | None, Query(alias="channelId", max_length=100, description="One channel only")]
OlderThan = Annotated[
    int | None,
    Query(
        alias="olderThan", ge=0, le=10 * 365 * 86_400, description="Created at least this many seconds ago"
    ),
]
Sort = Annotated[
    messages.ReviewSort,
    Query(description="newest (default), risk (critical first, then newest), deadline (soonest first)"),
]


def _listed(values: list[str] | None, allowed: tuple[str, ...], field: str) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(v.strip() for value in values or () for v in value.split(",") if v.strip()))
    for value in found:
        if value not in allowed:
            raise InvalidError(
                ErrorCode.VALIDATION_ERROR, f"{value!r} is not one of {', '.join(allowed)}", field
            )
    return found


def _query(
    risk: list[str] | None, type_: list[str] | None, channel_id: str | None, older_than: int | None, sort: str
) -> messages.ReviewQuery:
    return messages.ReviewQuery(
        channel_id=channel_id,
        risks=_listed(risk, messages.RISK_FILTERS, "risk"),
        types=_listed(type_, REVIEW_TYPES, "type"),
        older_than=older_than,
        sort=cast(messages.ReviewSort, sort),
    )


@router.get("/pending", response_model=list[MessageView])
async def pending(
    who: CurrentReader,
    ctx: Ctx,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    risk: Labels = None,
    type_: Types = None,
    channel_id: ChannelId = None,
    older_than: OlderThan = None,
    sort: Sort = "newest",
) -> list[MessageView]:
    """Every pending review of one channel (or of all the caller's channels, shared ones
    included), newest first unless ``sort`` says otherwise: a bare array, as Placet answers (at
    most 1,000; the inbox below pages). Filters: ``risk``, ``type``, ``channelId``, ``olderThan``."""
    query = _query(risk, type_, channel_id, older_than, sort)
    for wanted in (channel, channel_id):
        if wanted is not None:
            await ctx.readable_channel(who, wanted)
    data, _ = await messages.list_reviews(
        ctx.db, await ctx.reach(who), channel, 1000, None, who.reader_id, query=query
    )
    return data


@router.get("/inbox", response_model=MessagePage)
async def inbox(
    user: CurrentUser,
    ctx: Ctx,
    limit: Limit = 50,
    cursor: Cursor = None,
    risk: Labels = None,
    type_: Types = None,
    channel_id: ChannelId = None,
    older_than: OlderThan = None,
    sort: Sort = "newest",
) -> MessagePage:
    """A human's inbox: pending reviews across all their channels and those shared with them,
    filtered and sorted as ``/pending``, paged (``nextCursor`` belongs to the same sort)."""
    query = _query(risk, type_, channel_id, older_than, sort)
    if channel_id is not None:
        await ctx.readable_channel(user, channel_id)
    data, nxt = await messages.list_reviews(ctx.db, await ctx.reach(user), None, limit, cursor, query=query)
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
        raise NotFoundError("review")
    return message_view_for(doc, who.reader_id)


@router.post("/{message_id}/respond", response_model=MessageView, responses={409: {}, 422: {}})
async def respond(message_id: str, body: RespondIn, user: CurrentAnswerer, ctx: Ctx) -> MessageView:
    """Answer a review. The first response wins; later ones (or after expiry) get 409. On a
    quorum review each reviewer's response is a vote (a second vote by the same reviewer: 409)."""
    if body.remember is not None and user.kind != "user":
        # A standing approval is a person's to give, not an embedded page's.
        raise ForbiddenError(
            ErrorCode.USER_REQUIRED, "only a user's session can remember an approval", "remember"
        )
    view = await ctx.reviewing.respond(
        user,
        message_id,
        user.owner_id,
        body.response,
        body.feedback,
        body.modified_file_ids,
        remember=body.remember,
        # A scoped token answers for its owner, but sees what a member sees (never the owner's
        # webhook settings) and casts no quorum vote (a vote is a person's).
        viewer_id=user.reader_id,
        may_vote=user.kind != "scoped",
    )
    ctx.outbox_written()
    return view
