"""Webhook endpoints: per channel (``/agents/{id}/endpoints``) and per account (``/endpoints``).
Owner only; the signing secret is shown once, on create and on rotation."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from sayso_api import endpoints, replay
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.endpoints import (
    EndpointChoices,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointSecretRotated,
)
from sayso_api.replay import RecoverIn, ReplayIn, ReplayOut
from sayso_api.schemas import DataList, DeletedOut
from sayso_api.webhooks import DeliveryOut, RecoverOut
from sayso_common.topics import all_topics

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def _retention(ctx: Ctx) -> timedelta:
    return timedelta(days=ctx.settings.retention_days)


def _reach(ctx: Ctx) -> endpoints.Reach:
    settings = ctx.settings
    return endpoints.Reach(
        settings.dispatcher_allowed_networks,
        settings.kafka_bootstrap,
        settings.dispatcher_kafka_allowed_hosts,
        settings.dispatcher_kafka_topic_prefix,
        all_topics(settings.topic_prefix),
    )


def _grace(ctx: Ctx) -> timedelta:
    return timedelta(seconds=ctx.settings.webhook_rotation_grace_seconds)


# --- a channel's endpoints --------------------------------------------------------------------


@router.post(
    "/agents/{agent_id}/endpoints", status_code=201, response_model=EndpointCreated, responses={422: {}}
)
async def create_channel_endpoint(
    agent_id: str, body: EndpointIn, who: CurrentPrincipal, ctx: Ctx
) -> EndpointCreated:
    """Add an endpoint: the channel's events of its types that pass its filter are delivered to it
    too, besides the agent's own webhook URL. The response carries its signing secret once."""
    return await endpoints.create_endpoint(ctx.db, ctx.box, _reach(ctx), who.owner_id, agent_id, body)


@router.get("/agents/{agent_id}/endpoints", response_model=DataList[EndpointOut])
async def list_channel_endpoints(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> DataList[EndpointOut]:
    return DataList(data=await endpoints.list_endpoints(ctx.db, who.owner_id, agent_id))


@router.get("/agents/{agent_id}/endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_channel_endpoint(
    agent_id: str, endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> EndpointOut:
    return endpoints.endpoint_out(await endpoints.get_endpoint(ctx.db, who.owner_id, agent_id, endpoint_id))


@router.patch("/agents/{agent_id}/endpoints/{endpoint_id}", response_model=EndpointOut, responses={422: {}})
async def patch_channel_endpoint(
    agent_id: str, endpoint_id: str, body: EndpointPatch, who: CurrentPrincipal, ctx: Ctx
) -> EndpointOut:
    return await endpoints.patch_endpoint(
        ctx.db, ctx.box, _reach(ctx), who.owner_id, agent_id, endpoint_id, body
    )


@router.delete("/agents/{agent_id}/endpoints/{endpoint_id}", response_model=DeletedOut)
async def delete_channel_endpoint(
    agent_id: str, endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> DeletedOut:
    await endpoints.delete_endpoint(ctx.db, who.owner_id, agent_id, endpoint_id)
    return DeletedOut()


@router.post("/agents/{agent_id}/endpoints/{endpoint_id}/secret/rotate", response_model=EndpointSecretRotated)
async def rotate_channel_endpoint_secret(
    agent_id: str, endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> EndpointSecretRotated:
    """A new signing secret (shown once); the old one keeps signing for the grace period."""
    return await endpoints.rotate_secret(ctx.db, ctx.box, who.owner_id, agent_id, endpoint_id, _grace(ctx))


@router.get("/agents/{agent_id}/endpoints/{endpoint_id}/deliveries", response_model=DataList[DeliveryOut])
async def channel_endpoint_deliveries(
    agent_id: str, endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> DataList[DeliveryOut]:
    """The endpoint's latest deliveries (at most 100), newest first, with their attempts."""
    return DataList(data=await endpoints.list_deliveries(ctx.db, who.owner_id, agent_id, endpoint_id))


@router.post(
    "/agents/{agent_id}/endpoints/{endpoint_id}/recover",
    status_code=202,
    response_model=RecoverOut,
    responses={422: {}},
)
async def recover_channel_endpoint(
    agent_id: str, endpoint_id: str, body: RecoverIn, who: CurrentPrincipal, ctx: Ctx
) -> RecoverOut:
    """Re-send the endpoint's deliveries that failed since ``since`` (default 24 h ago), the same
    documents with the same ``webhook-id``; at most 10,000 per call (``more``: call again)."""
    return await replay.recover(ctx.db, who.owner_id, agent_id, endpoint_id, body.since)


@router.post(
    "/agents/{agent_id}/endpoints/{endpoint_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    responses={409: {}, 422: {}},
)
async def replay_channel_endpoint(
    agent_id: str, endpoint_id: str, body: ReplayIn, who: CurrentPrincipal, ctx: Ctx
) -> ReplayOut:
    """Deliver the channel's stored events of ``[from, to)`` that the endpoint's types and filter
    match, as the dispatcher would have; once per (event, endpoint): a failed delivery is sent
    again, any other left alone. At most 1,000 events read per call (``more``, ``nextCursor``)."""
    retention = _retention(ctx)
    return await replay.replay(ctx.db, who.owner_id, agent_id, endpoint_id, body, retention)


# --- the account's endpoints (every channel of the caller's) ----------------------------------


@router.post("/endpoints", status_code=201, response_model=EndpointCreated, responses={422: {}})
async def create_account_endpoint(body: EndpointIn, who: CurrentPrincipal, ctx: Ctx) -> EndpointCreated:
    """Add an account-wide endpoint: it receives the events of every channel you own."""
    return await endpoints.create_endpoint(ctx.db, ctx.box, _reach(ctx), who.owner_id, None, body)


# Declared before /endpoints/{endpoint_id}, which would otherwise take "choices" for an id.
@router.get("/endpoints/choices", response_model=EndpointChoices)
async def endpoint_choices(who: CurrentPrincipal) -> EndpointChoices:
    """The event types, formats and limits an endpoint may be given (for forms)."""
    return endpoints.endpoint_choices()


@router.get("/endpoints", response_model=DataList[EndpointOut])
async def list_account_endpoints(who: CurrentPrincipal, ctx: Ctx) -> DataList[EndpointOut]:
    return DataList(data=await endpoints.list_endpoints(ctx.db, who.owner_id, None))


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_account_endpoint(endpoint_id: str, who: CurrentPrincipal, ctx: Ctx) -> EndpointOut:
    return endpoints.endpoint_out(await endpoints.get_endpoint(ctx.db, who.owner_id, None, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", response_model=EndpointOut, responses={422: {}})
async def patch_account_endpoint(
    endpoint_id: str, body: EndpointPatch, who: CurrentPrincipal, ctx: Ctx
) -> EndpointOut:
    return await endpoints.patch_endpoint(ctx.db, ctx.box, _reach(ctx), who.owner_id, None, endpoint_id, body)


@router.delete("/endpoints/{endpoint_id}", response_model=DeletedOut)
async def delete_account_endpoint(endpoint_id: str, who: CurrentPrincipal, ctx: Ctx) -> DeletedOut:
    await endpoints.delete_endpoint(ctx.db, who.owner_id, None, endpoint_id)
    return DeletedOut()


@router.post("/endpoints/{endpoint_id}/secret/rotate", response_model=EndpointSecretRotated)
async def rotate_account_endpoint_secret(
    endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> EndpointSecretRotated:
    return await endpoints.rotate_secret(ctx.db, ctx.box, who.owner_id, None, endpoint_id, _grace(ctx))


@router.get("/endpoints/{endpoint_id}/deliveries", response_model=DataList[DeliveryOut])
async def account_endpoint_deliveries(
    endpoint_id: str, who: CurrentPrincipal, ctx: Ctx
) -> DataList[DeliveryOut]:
    return DataList(data=await endpoints.list_deliveries(ctx.db, who.owner_id, None, endpoint_id))


@router.post(
    "/endpoints/{endpoint_id}/recover", status_code=202, response_model=RecoverOut, responses={422: {}}
)
async def recover_account_endpoint(
    endpoint_id: str, body: RecoverIn, who: CurrentPrincipal, ctx: Ctx
) -> RecoverOut:
    """Re-send the endpoint's deliveries that failed since ``since`` (same ``webhook-id``)."""
    return await replay.recover(ctx.db, who.owner_id, None, endpoint_id, body.since)


@router.post(
    "/endpoints/{endpoint_id}/replay", status_code=202, response_model=ReplayOut, responses={409: {}, 422: {}}
)
async def replay_account_endpoint(
    endpoint_id: str, body: ReplayIn, who: CurrentPrincipal, ctx: Ctx
) -> ReplayOut:
    """Deliver the account's stored events of ``[from, to)`` the endpoint matches, once each."""
    return await replay.replay(ctx.db, who.owner_id, None, endpoint_id, body, _retention(ctx))
