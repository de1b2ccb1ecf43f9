"""HTTP routes of the gateway: SSE. Thin: parse, call one domain function, answer. (The long-poll
is a plain ASGI callable in front of these: see :mod:`sayso_realtime.wait_endpoint`.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from sayso_common.http_errors import not_found, unauthorized
from sayso_common.membership import reach_of
from sayso_common.principals import BadCredentialsError, Principal, credential_from_headers
from sayso_realtime import sse
from sayso_realtime.channels import UnknownChannelError, owned
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
        raise unauthorized(str(exc)) from None


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
ChannelParam = Annotated[str | None, Query(max_length=100)]


@router.get("/events", tags=["events"])
async def events(
    request: Request,
    who: CurrentPrincipal,
    gw: Gw,
    channel: ChannelParam = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since: Annotated[str | None, Query(alias="lastEventId", max_length=64)] = None,
) -> sse.Response:
    """Server-sent events of the caller's channels and those shared with them (or one),
    resumable with ``Last-Event-ID``."""
    reach = await reach_of(gw.runtime.db, who)
    channels = None
    if channel:
        try:
            channels = await owned(gw.runtime.db, reach, [channel])
        except UnknownChannelError:
            raise not_found("channel") from None
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
