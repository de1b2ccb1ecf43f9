"""Shared steps for the dispatcher tests: ask for a review, answer it, read deliveries back."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.support.receiver import Handler, Received
from tests.support.stack import Owner, eventually

APPROVAL = {
    "type": "approval",
    "payload": {"options": [{"id": "ok", "label": "OK"}, {"id": "no", "label": "No"}]},
}


async def answered(owner: Owner, agent_id: str, **fields: Any) -> dict[str, Any]:
    """Post a message with an approval review and answer it; returns the message."""
    review = {**APPROVAL, **fields.pop("review", {})}
    msg = await owner.post_message(agent_id, review=review, **fields)
    resp = await owner.respond(msg["id"], {"selectedOption": "ok"})
    assert resp.status_code == 200, resp.text
    return msg


async def deliveries(owner: Owner, message_id: str) -> list[dict[str, Any]]:
    resp = await owner.agent.get(f"/api/v1/messages/{message_id}/deliveries")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def settled(owner: Owner, message_id: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the message's single delivery reaches ``state``; returns it."""

    async def check() -> dict[str, Any] | None:
        found = await deliveries(owner, message_id)
        return found[0] if len(found) == 1 and found[0]["state"] == state else None

    return await eventually(check, timeout, f"delivery of {message_id} {state}")


def answer(status: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def handler(_: web.Request, __: Received) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)

    return handler


def sequence(*handlers: Handler) -> Handler:
    """Answer with each handler in turn, the last one from then on."""
    calls = 0

    async def handler(request: web.Request, got: Received) -> web.StreamResponse:
        nonlocal calls
        chosen = handlers[min(calls, len(handlers) - 1)]
        calls += 1
        return await chosen(request, got)

    return handler


def gaps(requests: list[Received]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]
