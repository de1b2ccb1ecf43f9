"""Slack's interactive endpoint: button clicks on the messages the notifier posted."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from sayso_api import slack
from sayso_api.deps import Ctx
from sayso_common.answer_links import link_key
from sayso_common.errors import NotFoundError

router = APIRouter(prefix="/api/integrations", tags=["notifications"])


@router.post("/slack/actions", status_code=200, responses={401: {}, 404: {}, 422: {}})
async def slack_actions(request: Request, ctx: Ctx) -> Response:
    """Slack's Request URL for interactivity: form-encoded ``payload``, signed with the Slack
    app's signing secret (``SAYSO_SLACK_SIGNING_SECRET``; 404 while unset). A click answers
    the review as the user the message was sent for; the message is then updated."""
    secret = ctx.settings.slack_signing_secret
    if secret is None:
        raise NotFoundError("Slack integration")
    body = await request.body()
    slack.verify(
        secret.get_secret_value().encode(),
        request.headers.get("x-slack-request-timestamp"),
        request.headers.get("x-slack-signature"),
        body,
        time.time(),
        ctx.settings.slack_tolerance_seconds,
    )
    results = await slack.act(
        ctx.db,
        ctx.reviewing,
        ctx.box,
        link_key(ctx.settings.secret_key.get_secret_value()),
        slack.interaction(body),
    )
    if any(found.status == "answered" for found in results):
        ctx.outbox_written()
    # Slack wants a 200 within 3 s; what the click did shows in the updated message.
    return Response(status_code=200)
