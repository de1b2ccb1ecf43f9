"""Expunge a message's content, keeping its record and audit trail (sayso_api.expunge)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import expunge
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_common.views import MessageView, message_view_for

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])

OptChannel = Annotated[str | None, Query(max_length=100, description="Agent/channel id")]


@router.post("/{message_id}/expunge", response_model=MessageView)
async def expunge_message(
    message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None
) -> MessageView:
    """Remove the message's content — text, metadata, the review's payload and answers, its
    attachments' bytes — and the same content in its stored events, its finished webhook
    deliveries (body sent, receivers' replies) and any entry the relay could not publish; its id,
    channel, times and statuses stay, marked ``expunged``, and the audit log records the expunge.
    Owners only; idempotent. A pending review (answer it or let it expire), an open stream or a
    webhook delivery still being retried answers 409. Events already published are not
    recalled."""
    done = await expunge.expunge_message(ctx.db, who, message_id, channel)
    return message_view_for(done.message, who.reader_id)
