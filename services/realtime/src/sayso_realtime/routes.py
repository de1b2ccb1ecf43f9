"""HTTP routes of the gateway: SSE and its stream tickets. Thin: parse, call one domain function,
answer. (The long-poll is a plain ASGI callable in front of these: see
:mod:`sayso_realtime.wait_endpoint`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from sayso_common import ratelimit
from sayso_common.errors import NotFoundError, UnauthorizedError
from sayso_common.membership import reach_of
from sayso_common.principals import BadCredentialsError, Principal, credential_from_headers
from sayso_realtime import sse, tickets
from sayso_realtime.channels import MAX_CHANNELS, UnknownChannelError, missing, owned
from sayso_realtime.gateway import Gateway
from sayso_realtime.history import valid_event_id
from sayso_realtime.quotas import TooManyConnectionsError, too_many_connections

router = APIRouter(prefix="/api/v1")


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


Gw = Annotated[Gateway, Depends(_gateway)]


async def _principal(
    gw: Gw,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    try:
        return await gw.auth.principal(credential_from_headers(authorization, x_api_key))
    except BadCredentialsError as exc:
        raise UnauthorizedError(str(exc), challenge=True) from None


async def _reader(
    gw: Gw,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    ticket: Annotated[str | None, Query(max_length=100)] = None,
) -> Principal:
    """A stream's reader: a ticket (``?ticket=``, what a browser's EventSource can send) or the
    credential headers."""
    if ticket is None:
        return await _principal(gw, authorization, x_api_key)
    try:
        who = await tickets.redeem(gw.runtime.db, ticket)
    except tickets.BadTicketError as exc:
        raise UnauthorizedError(str(exc), challenge=True) from None
    # Its minting credential may have been revoked since: the watch would end the stream within a
    # period, but the ticket should not open one at all.
    if not await gw.watch.holds(who):
        raise UnauthorizedError("the credential that minted this ticket no longer holds", challenge=True)
    return who


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
StreamReader = Annotated[Principal, Depends(_reader)]
ChannelParam = Annotated[str | None, Query(max_length=100)]


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, alias="channelIds", min_length=1, max_length=MAX_CHANNELS
    )


class TicketOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    ticket: str
    expires_at: datetime = Field(alias="expiresAt")


@router.post("/events/tickets", tags=["events"], status_code=201, response_model=TicketOut)
async def create_ticket(
    who: CurrentPrincipal, gw: Gw, body: Annotated[TicketIn | None, Body()] = None
) -> TicketOut:
    """A single-use ticket that opens one stream (``GET /api/v1/events?ticket=…``) or socket
    within 60 s, for the caller's channels (those shared with a user included) or some of them."""
    await ratelimit.hit(
        gw.runtime.db,
        f"tickets:{who.credential_id or who.owner_id}",
        gw.settings.realtime_tickets_per_minute,
        setting="SAYSO_REALTIME_TICKETS_PER_MINUTE",
        what="minting stream tickets with this credential",
    )
    wanted = body.channel_ids if body is not None else None
    channels = None
    if wanted is not None:
        reach = await reach_of(gw.runtime.db, who)
        absent = await missing(gw.runtime.db, reach, wanted)
        if absent is not None:
            raise NotFoundError(f"channel {wanted[absent]}", f"channelIds[{absent}]")
        channels = frozenset(wanted)
    minted = await tickets.mint(gw.runtime.db, who, channels)
    return TicketOut(ticket=minted.ticket, expiresAt=minted.expires_at)


@router.get("/events", tags=["events"])
async def events(
    request: Request,
    who: StreamReader,
    gw: Gw,
    channel: ChannelParam = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since: Annotated[str | None, Query(alias="lastEventId", max_length=64)] = None,
) -> sse.Response:
    """Server-sent events of the caller's channels and those shared with them (or one),
    resumable with ``Last-Event-ID`` (or ``?lastEventId=``). Credentials in the headers, or a
    ticket from ``POST /api/v1/events/tickets`` in ``?ticket=``."""
    reach = await reach_of(gw.runtime.db, who)
    channels = who.channels
    if channel:
        try:
            channels = await owned(gw.runtime.db, reach, [channel])
        except UnknownChannelError:
            raise NotFoundError("channel") from None
    try:
        place = gw.streams.take(who.owner_id)
    except TooManyConnectionsError as exc:
        raise too_many_connections(exc) from None
    cursor = last_event_id or since
    body = sse.stream(
        gw.runtime.db,
        gw.fanout,
        gw.settings,
        who,
        reach,
        channels,
        cursor if valid_event_id(cursor) else None,
        request.is_disconnected,
        gw.watch,
        gw.shared,
    )
    return sse.Response(body, place)
