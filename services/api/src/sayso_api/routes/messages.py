from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from sayso_api import messages, streams
from sayso_api.deps import Ctx, CurrentPrincipal, CurrentReader, CurrentUser
from sayso_api.schemas import (
    AckOut,
    DeletedOut,
    IterationsOut,
    MessageIn,
    MessagePage,
    StatusEventIn,
    StreamPatchIn,
    UserMessageIn,
)
from sayso_common.errors import ErrorCode, InvalidError
from sayso_common.views import MessageView, StatusEventView, message_view_for

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])

Channel = Annotated[str, Query(min_length=1, max_length=100, description="Agent/channel id")]
# As Placet: larger pages are capped, not refused.
MAX_PAGE = 100
OptChannel = Annotated[str | None, Query(max_length=100, description="Agent/channel id")]


IDEMPOTENCY_KEY_MAX = 200
# The header is read in the handler, not declared as a FastAPI parameter (per-parameter
# validation was ~4% of the message hot path's CPU, README *Performance*); documented here as
# FastAPI would document it.
_IDEMPOTENCY_KEY_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "idempotency-key",
            "in": "header",
            "required": False,
            "schema": {
                "anyOf": [{"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}, {"type": "null"}],
                "title": "Idempotency-Key",
            },
        }
    ]
}


@router.post("", status_code=201, response_model=MessageView, openapi_extra=_IDEMPOTENCY_KEY_DOC)
async def create_message(body: MessageIn, who: CurrentPrincipal, ctx: Ctx, request: Request) -> Response:
    """Post a message, optionally asking for a review. ``clientId`` (or an ``Idempotency-Key``
    header) makes retries safe: the same key returns the original message."""
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR,
            f"idempotency-key: String should have at most {IDEMPOTENCY_KEY_MAX} characters",
            "idempotency-key",
        )
    if idempotency_key and body.client_id and idempotency_key != body.client_id:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, "Idempotency-Key and clientId differ", "clientId")
    if idempotency_key and not body.client_id:
        body = body.model_copy(update={"client_id": idempotency_key})
    await ctx.own_channel(who.owner_id, body.channel_id)
    view, replayed = await messages.create_message(ctx.db, ctx.settings, ctx.box, who.owner_id, body)
    ctx.outbox_written()
    # Serialised once here; returning the model would make FastAPI validate it again.
    return Response(
        view.model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


@router.post("/user", status_code=201, response_model=MessageView)
async def create_user_message(body: UserMessageIn, user: CurrentUser, ctx: Ctx) -> MessageView:
    """A human's own message into a channel (emits ``message.created``, which the agent's
    webhook can receive)."""
    await ctx.own_channel(user.owner_id, body.channel_id)
    if not (body.text or body.attachment_ids):
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR, "a message must contain at least text or attachmentIds", "text"
        )
    view, _ = await messages.create_message(
        ctx.db,
        ctx.settings,
        ctx.box,
        user.owner_id,
        MessageIn(
            channel_id=body.channel_id,
            text=body.text,
            metadata=body.metadata,
            attachment_ids=body.attachment_ids,
            client_id=body.client_id,
        ),
        sender_type="user",
        sender_id=user.owner_id,
    )
    return view


@router.get("", response_model=MessagePage)
async def list_messages(
    channel: Channel,
    who: CurrentReader,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, description="Page size, default 50; above 100 is capped")] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    # NUL cannot appear in a MongoDB regular expression; refuse it as bad input.
    search: Annotated[str | None, Query(max_length=200, pattern="^[^\x00]*$")] = None,
    correlation_id: Annotated[str | None, Query(alias="correlationId", max_length=100)] = None,
    has_attachments: Annotated[str | None, Query(description="true: only messages with attachments")] = None,
) -> MessagePage:
    """Newest first. Pass ``nextCursor`` back as ``cursor`` for the next page."""
    owner_id = await ctx.readable_channel(who, channel)
    data, next_cursor = await messages.list_messages(
        ctx.db,
        owner_id,
        channel,
        min(limit, MAX_PAGE),
        cursor,
        search,
        correlation_id,
        reader_id=who.reader_id,
        with_attachments=has_attachments == "true",
    )
    return MessagePage(data=data, next_cursor=next_cursor)


@router.patch("/streams/{stream_id}", response_model=MessageView)
async def patch_stream(stream_id: str, body: StreamPatchIn, who: CurrentPrincipal, ctx: Ctx) -> MessageView:
    """Replace a streamed draft's text; ``complete: true`` (or ``streamState``) closes it. A
    closed stream answers 409."""
    view = await streams.patch_stream(ctx.db, ctx.settings, who.owner_id, stream_id, body)
    ctx.outbox_written()
    return view


@router.post("/streams/{stream_id}/status", status_code=201, response_model=StatusEventView)
async def stream_status(
    stream_id: str, body: StatusEventIn, who: CurrentPrincipal, ctx: Ctx
) -> StatusEventView:
    """Append a progress step (e.g. "searching the docs…") to a streaming draft."""
    created = await streams.append_status(ctx.db, who.owner_id, stream_id, body)
    ctx.outbox_written()
    return created


@router.get("/iterations/{message_id}", response_model=IterationsOut)
async def get_iterations(
    message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None
) -> IterationsOut:
    group_id, items = await ctx.reviewing.chain(who.owner_id, message_id, channel)
    return IterationsOut(group_id=group_id, iterations=items)


@router.get("/{message_id}", response_model=MessageView)
async def get_message(
    message_id: str, who: CurrentReader, ctx: Ctx, channel: OptChannel = None
) -> MessageView:
    doc = await messages.get_message(ctx.db, await ctx.reach(who), message_id, channel)
    return message_view_for(doc, who.reader_id)


@router.delete("/{message_id}", response_model=DeletedOut)
async def delete_message(
    message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None
) -> DeletedOut:
    """Retract a message. A member of an iteration chain with other messages is refused with
    400, as in Placet."""
    await messages.delete_message(ctx.db, who.owner_id, message_id, channel)
    return DeletedOut()


@router.post("/{message_id}/ack", response_model=AckOut)
async def ack(message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None) -> AckOut:
    """The agent confirms it received the response; delivery status becomes ``agent_received``."""
    await messages.acknowledge(ctx.db, who.owner_id, message_id, channel)
    return AckOut()
