"""The audit log: every decision (a person's, a policy's, each quorum vote, an expiry) and every
policy change, newest first; exported whole as JSON Lines or CSV. An owner reads their channels'
and account's entries, a member those of the channels shared with them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from sayso_api import audit
from sayso_api.audit import AuditFilter, AuditPage, ExportFormat
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_common.documents import AuditKind

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

From = Annotated[
    datetime | None, Query(alias="from", description="ISO 8601; entries at or after (UTC if no offset)")
]
To = Annotated[datetime | None, Query(alias="to", description="ISO 8601; entries before")]
ChannelId = Annotated[str | None, Query(alias="channelId", min_length=1, max_length=100)]
Actor = Annotated[
    str | None,
    Query(
        min_length=1, max_length=100, description="A user, policy or API key id, or policy | system | agent"
    ),
]
Decision = Annotated[
    str | None, Query(min_length=1, max_length=1000, description="The recorded option or outcome")
]
Kind = Annotated[AuditKind | None, Query()]


def _filter(
    start: datetime | None,
    end: datetime | None,
    channel_id: str | None,
    actor: str | None,
    decision: str | None,
    kind: AuditKind | None,
) -> AuditFilter:
    return AuditFilter(start, end, channel_id, actor, decision, kind)


@router.get("", response_model=AuditPage, responses={422: {}})
async def audit_log(
    who: CurrentPrincipal,
    ctx: Ctx,
    start: From = None,
    end: To = None,
    channel_id: ChannelId = None,
    actor: Actor = None,
    decision: Decision = None,
    kind: Kind = None,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
) -> AuditPage:
    """Newest first. Pass ``nextCursor`` back as ``cursor`` for the next page."""
    wanted = _filter(start, end, channel_id, actor, decision, kind)
    return await audit.page(ctx.db, await ctx.reach(who), wanted, cursor, limit)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "Every matching entry"},
        422: {},
    },
)
async def export_audit_log(
    who: CurrentPrincipal,
    ctx: Ctx,
    format: Annotated[ExportFormat, Query(description="jsonl (one entry a line) or csv")] = "jsonl",
    start: From = None,
    end: To = None,
    channel_id: ChannelId = None,
    actor: Actor = None,
    decision: Decision = None,
    kind: Kind = None,
) -> StreamingResponse:
    """Every matching entry, newest first, streamed; CSV starts with a fixed header row."""
    wanted = _filter(start, end, channel_id, actor, decision, kind)
    body = await audit.export(ctx.db, await ctx.reach(who), wanted, format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"sayso-audit.{format}"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
