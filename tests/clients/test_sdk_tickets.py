"""The SDK's stream tickets and scoped tokens (issue #33): a session creates, lists and revokes a
token; the token mints a ticket that opens the event stream once."""

from __future__ import annotations

import httpx

import sayso
from tests.support.stack import Owner, RunningStack


async def test_tokens_and_tickets_through_the_sdk(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent(name="sdk-tickets"))["id"]
    async with sayso.AsyncClient(stack.url, owner.token) as human:
        created = await human.create_token([channel], 600, name="wall")
        assert created.token is not None
        assert created.token.startswith("sct_")
        assert created.channel_ids == [channel]
        assert not created.answer
        listed = await human.list_tokens()
        assert [t.id for t in listed if t.id == created.id] == [created.id]
        assert all(t.token is None for t in listed)
        async with sayso.AsyncClient(stack.url, created.token) as embedded:
            ticket = await embedded.create_ticket([channel])
            assert ticket.ticket.startswith("tk_")
            pending = await embedded.pending_reviews(channel)
            assert pending == []
        async with (
            httpx.AsyncClient(base_url=stack.url, timeout=30) as plain,
            plain.stream("GET", "/api/v1/events", params={"ticket": ticket.ticket}) as first,
        ):
            assert first.status_code == 200
            again = await plain.get("/api/v1/events", params={"ticket": ticket.ticket})
            assert again.status_code == 401
        assert await human.revoke_token(created.id)
        assert created.id not in [t.id for t in await human.list_tokens()]
    with sayso.Client(stack.url, owner.api_key) as agent:
        assert agent.create_ticket().ticket.startswith("tk_")
