"""Outbound webhook management: deliveries, manual retry, test, recover, secret rotation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from sayso_api import webhooks
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.webhooks import DeliveryList, RecoverOut, RetryOut, SecretRotated, TestOut

router = APIRouter(prefix="/api/v1", tags=["webhooks"])

OptChannel = Annotated[str | None, Query(max_length=100, description="Agent/channel id")]


@router.get("/messages/{message_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None
) -> DeliveryList:
    """Webhook deliveries of a message, each with its recorded attempts."""
    docs = await webhooks.list_deliveries(ctx.db, who.owner_id, message_id, channel)
    return DeliveryList(data=[webhooks.delivery_out(d) for d in docs])


@router.post("/messages/{message_id}/webhook/retry", status_code=202, response_model=RetryOut)
async def retry_webhook(
    message_id: str, who: CurrentPrincipal, ctx: Ctx, channel: OptChannel = None
) -> RetryOut:
    """Send the original body again, with the same ``webhook-id`` (receivers dedupe on it)."""
    docs = await webhooks.retry_message(ctx.db, who.owner_id, message_id, channel)
    return RetryOut(requeued=[webhooks.delivery_out(d) for d in docs])


@router.post("/agents/{agent_id}/webhook/test", response_model=TestOut)
async def test_webhook(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> TestOut:
    """POST a signed ``webhook:test`` event to the agent's default URL now; answers with the
    attempt (status code, duration, first 1 KB of the body, or why it failed)."""
    return await webhooks.send_test(ctx.db, who.owner_id, agent_id)


@router.post("/agents/{agent_id}/webhook/recover", status_code=202, response_model=RecoverOut)
async def recover_webhooks(
    agent_id: str,
    who: CurrentPrincipal,
    ctx: Ctx,
    since: Annotated[datetime | None, Query(description="Failed since (ISO 8601); default 24 h ago")] = None,
) -> RecoverOut:
    """Re-queue the agent's failed deliveries, e.g. after its receiver was down for a day."""
    return await webhooks.recover(ctx.db, who.owner_id, agent_id, since)


@router.post("/agents/{agent_id}/webhook/secret/rotate", response_model=SecretRotated)
async def rotate_secret(agent_id: str, who: CurrentPrincipal, ctx: Ctx) -> SecretRotated:
    """Issue a new signing secret (shown once). The old one keeps signing for the grace period
    (24 h by default): requests carry both signatures until then."""
    grace = timedelta(seconds=ctx.settings.webhook_rotation_grace_seconds)
    return await webhooks.rotate_secret(ctx.db, ctx.box, who.owner_id, agent_id, grace)
