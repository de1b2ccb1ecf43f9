"""Per-tenant caps on live connections (issue #25 finding 8): SSE streams, parked long-polls and
Socket.IO sockets, each counted per owner account on a realtime replica with small limits. Past
its cap an owner gets a 429 naming the limit (a refused connect, for a socket); other owners are
not affected, and a place freed is a place to use again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio

from sayso_devstack.processes import Proc
from sayso_realtime.quotas import ConnectionQuota, TooManyConnectionsError
from tests.conftest import Infra
from tests.realtime.clients import socket_client, sse_stream
from tests.support.private import beside
from tests.support.stack import Owner, RunningStack, eventually

STREAMS, POLLS, SOCKETS, TICKETS = 2, 3, 2, 3


@pytest.fixture(scope="module")
def limited(infra: Infra, stack: RunningStack) -> Iterator[Proc]:
    with beside(
        stack,
        infra,
        "realtime",
        "realtime-limited",
        SAYSO_REALTIME_MAX_STREAMS_PER_OWNER=str(STREAMS),
        SAYSO_REALTIME_MAX_POLLS_PER_OWNER=str(POLLS),
        SAYSO_REALTIME_MAX_SOCKETS_PER_OWNER=str(SOCKETS),
        SAYSO_REALTIME_TICKETS_PER_MINUTE=str(TICKETS),
    ) as proc:
        yield proc


@pytest.fixture
async def other(stack: RunningStack) -> AsyncIterator[Owner]:
    async with await stack.new_owner() as created:
        yield created


@pytest.mark.parametrize(
    ("limit", "takes", "refused"),
    [
        (1, ["a"], []),
        (1, ["a", "a"], [1]),
        (2, ["a", "b", "a", "b", "a", "b"], [4, 5]),  # each owner its own count
        (3, ["a"] * 5, [3, 4]),
    ],
)
def test_a_quota_counts_per_owner_and_refuses_past_its_limit(
    limit: int, takes: list[str], refused: list[int]
) -> None:
    quota = ConnectionQuota("streams", limit, "SAYSO_X")
    places, refusals = [], []
    for i, owner_id in enumerate(takes):
        try:
            places.append(quota.take(owner_id))
        except TooManyConnectionsError:
            refusals.append(i)
    assert refusals == refused
    owner_id = places[0].owner_id
    held = min(takes.count(owner_id), limit)
    assert quota.open[owner_id] == held
    places[0].release()
    places[0].release()  # once only: a second release frees nothing more
    assert quota.open[owner_id] == held - 1
    for place in places:
        place.release()
    assert not quota.open  # nothing left counted once every connection ended


def _url(proc: Proc) -> str:
    return f"http://127.0.0.1:{proc.port}"


def _assert_refused(resp: httpx.Response, setting: str, limit: int) -> None:
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert error["code"] == "too_many_connections"
    assert setting in error["message"], error
    assert f" {limit} " in error["message"], error
    assert int(resp.headers["retry-after"]) > 0


async def test_sse_streams_past_the_owners_limit_get_429_and_a_closed_one_frees_its_place(
    limited: Proc, owner: Owner, other: Owner
) -> None:
    key, token = {"x-api-key": owner.api_key}, {"Authorization": f"Bearer {owner.token}"}
    async with (
        httpx.AsyncClient(base_url=_url(limited), timeout=10) as client,
        contextlib.AsyncExitStack() as opened,
    ):
        # The account's key and its user's token share one count.
        await opened.enter_async_context(sse_stream(_url(limited), key))
        first_of_two = contextlib.AsyncExitStack()
        await first_of_two.enter_async_context(sse_stream(_url(limited), token))
        try:
            _assert_refused(
                await client.get("/api/v1/events", headers=key),
                "SAYSO_REALTIME_MAX_STREAMS_PER_OWNER",
                STREAMS,
            )
            # Another tenant is not affected.
            async with sse_stream(_url(limited), {"x-api-key": other.api_key}):
                pass
        finally:
            await first_of_two.aclose()

        async def reopened() -> bool:
            try:
                async with sse_stream(_url(limited), key):
                    return True
            except AssertionError:  # still 429: the closed stream's end not yet seen
                return False

        assert await eventually(reopened, what="a place freed by the closed stream")


async def _parked(probe: httpx.AsyncClient, at_least: float) -> bool:
    text = (await probe.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("sayso_realtime_waiters "):
            return float(line.split()[1]) >= at_least
    raise AssertionError("waiters gauge missing from /metrics")


async def test_long_polls_past_the_owners_limit_get_429_until_one_returns(
    limited: Proc, owner: Owner, other: Owner
) -> None:
    agent = await owner.create_agent(name="polls")
    review = {"type": "approval", "payload": {}}
    msgs = [await owner.post_message(agent["id"], text=f"q{i}", review=review) for i in range(POLLS)]
    theirs = await other.create_agent(name="theirs")
    their_msg = await other.post_message(theirs["id"], text="q", review=review)
    async with (
        httpx.AsyncClient(base_url=_url(limited), timeout=30, headers={"x-api-key": owner.api_key}) as mine,
        httpx.AsyncClient(base_url=_url(limited), timeout=30, headers={"x-api-key": other.api_key}) as them,
        httpx.AsyncClient(base_url=_url(limited), timeout=10) as probe,
    ):
        polls = [
            asyncio.create_task(mine.get(f"/api/v1/reviews/{m['id']}/wait", params={"timeout": 25000}))
            for m in msgs
        ]
        try:
            await eventually(lambda: _parked(probe, POLLS), what="the owner's polls parked")
            _assert_refused(
                await mine.get(f"/api/v1/reviews/{msgs[0]['id']}/wait", params={"timeout": 25000}),
                "SAYSO_REALTIME_MAX_POLLS_PER_OWNER",
                POLLS,
            )
            # Another tenant still parks one (and is answered).
            theirs_poll = asyncio.create_task(
                them.get(f"/api/v1/reviews/{their_msg['id']}/wait", params={"timeout": 25000})
            )
            await eventually(lambda: _parked(probe, POLLS + 1), what="the other owner's poll parked")
            assert (await other.respond(their_msg["id"], {"selectedOption": "approve"})).status_code == 200
            assert (await theirs_poll).json()["status"] == "completed"
            # One of the owner's reviews is answered: its poll returns, and its place is free again.
            assert (await owner.respond(msgs[0]["id"], {"selectedOption": "approve"})).status_code == 200
            assert (await polls[0]).json()["status"] == "completed"
            again = await mine.get(f"/api/v1/reviews/{msgs[0]['id']}/wait", params={"timeout": 1})
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "completed"
        finally:
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)


async def _refusal(url: str, auth: dict[str, Any]) -> str:
    try:
        async with socket_client(url, auth):
            return ""
    except socketio.exceptions.ConnectionError as exc:
        return str(exc)


async def test_sockets_past_the_owners_limit_are_refused_at_connect(
    limited: Proc, owner: Owner, other: Owner
) -> None:
    url = _url(limited)
    async with contextlib.AsyncExitStack() as opened:
        await opened.enter_async_context(socket_client(url, {"token": owner.api_key}))
        last = contextlib.AsyncExitStack()
        await last.enter_async_context(socket_client(url, {"token": owner.token}))
        try:
            refused = await _refusal(url, {"apiKey": owner.api_key})
            assert "too_many_connections" in refused
            assert "SAYSO_REALTIME_MAX_SOCKETS_PER_OWNER" in refused
            assert await _refusal(url, {"token": other.api_key}) == ""
        finally:
            await last.aclose()

        async def connects() -> bool:
            return await _refusal(url, {"apiKey": owner.api_key}) == ""

        assert await eventually(connects, what="a place freed by the disconnected socket")


async def test_minting_stream_tickets_is_limited_per_credential(
    limited: Proc, owner: Owner, other: Owner
) -> None:
    """A stolen or looping session cannot mint tickets without end: past the per-minute limit a
    credential gets 429 naming the setting, with Retry-After; another credential mints on. The
    count is a fixed window, so a minute's turn may let up to twice the limit through in a row."""
    async with httpx.AsyncClient(base_url=_url(limited), timeout=10) as client:
        mine = {"x-api-key": owner.api_key}
        answers = []
        for _ in range(2 * TICKETS + 1):
            resp = await client.post("/api/v1/events/tickets", headers=mine)
            answers.append(resp.status_code)
            if resp.status_code == 429:
                break
        assert answers[-1] == 429, answers
        assert answers[:-1] == [201] * (len(answers) - 1)
        assert len(answers) > TICKETS
        error = resp.json()["error"]
        assert error["code"] == "rate_limited"
        assert "SAYSO_REALTIME_TICKETS_PER_MINUTE" in error["message"]
        assert int(resp.headers["Retry-After"]) >= 1
        theirs = await client.post("/api/v1/events/tickets", headers={"x-api-key": other.api_key})
        assert theirs.status_code == 201, theirs.text
        # The owner's session is another credential with a budget of its own.
        session = await client.post(
            "/api/v1/events/tickets", headers={"Authorization": f"Bearer {owner.token}"}
        )
        assert session.status_code == 201, session.text
