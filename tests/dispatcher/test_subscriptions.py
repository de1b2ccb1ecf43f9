"""Webhook endpoints (issue #31): the API that manages them, and one event becoming one delivery
per matching endpoint beside the agent's own URL - against the real stack and real receivers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from tests.dispatcher.flows import APPROVAL, answer, answered, deliveries, sequence
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually


@pytest.fixture(scope="module")
async def team(stack: RunningStack) -> AsyncIterator[list[Owner]]:
    """An owner, a member of the owner's channels, and an outsider (made once: Argon2 is slow)."""
    async with stack.new_owners(3) as people:
        yield people


@pytest.fixture(scope="module")
async def refused(stack: RunningStack) -> AsyncIterator[Owner]:
    """The owner the table of refusals asks with: one for the module, not one (two Argon2
    hashes) per case; each case adds an agent of its own."""
    async with stack.new_owners(1) as [one]:
        yield one


async def add_endpoint(owner: Owner, channel: str | None, **body: Any) -> dict[str, Any]:
    path = f"/api/v1/agents/{channel}/endpoints" if channel else "/api/v1/endpoints"
    resp = await owner.agent.post(path, json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def all_deliveries(
    owner: Owner, message_id: str, count: int, state: str = "delivered"
) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        found = await deliveries(owner, message_id)
        return found if len(found) == count and all(d["state"] == state for d in found) else None

    return await eventually(check, 20.0, f"{count} deliveries of {message_id} {state}")


# --- the API ----------------------------------------------------------------------------------


async def test_endpoint_crud_shows_the_secret_once_and_masks_credentials(
    team: list[Owner], receiver: Receiver
) -> None:
    owner = team[0]
    agent = await owner.create_agent()
    base = f"/api/v1/agents/{agent['id']}/endpoints"
    created = await add_endpoint(
        owner,
        agent["id"],
        url=receiver.url("/crud"),
        description="audit log",
        eventTypes=["review:responded"],
        filter={"message.metadata.env": "prod"},
        format="standard",
        headers={"X-Team": "ops"},
        auth={"username": "u", "password": "p"},
        rateLimit=5,
    )
    assert created["id"].startswith("ep_")
    assert created["secret"].startswith("whsec_")
    assert created["channelId"] == agent["id"]
    assert created["headers"] == {"X-Team": "***"}
    assert created["auth"] == {"username": "u", "password": "***"}
    assert (created["rateLimit"], created["format"], created["disabled"]) == (5, "standard", False)

    shown = (await owner.agent.get(f"{base}/{created['id']}")).json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    assert [e["id"] for e in (await owner.agent.get(base)).json()["data"]] == [created["id"]]

    patched = await owner.human.patch(
        f"{base}/{created['id']}", json={"filter": None, "disabled": True, "eventTypes": ["review:expired"]}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["filter"], body["disabled"], body["disabledReason"]) == (None, True, "disabled by owner")
    assert (body["eventTypes"], body["url"], body["rateLimit"]) == (
        ["review:expired"],
        receiver.url("/crud"),
        5,
    )

    rotated = await owner.agent.post(f"{base}/{created['id']}/secret/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previousExpiresAt"] is not None

    assert (await owner.agent.delete(f"{base}/{created['id']}")).status_code == 200
    assert (await owner.agent.get(f"{base}/{created['id']}")).status_code == 404
    assert (await owner.agent.get(base)).json()["data"] == []


async def test_secrets_and_credentials_are_stored_sealed(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    created = await add_endpoint(
        owner, agent["id"], url=receiver.url("/sealed"), headers={"X-Token": "header-value-123"},
        auth={"username": "bob", "password": "password-456"},
    )  # fmt: skip
    client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
    try:
        stored = await client[stack.mongo_db]["endpoints"].find_one({"_id": created["id"]})
    finally:
        await client.close()
    assert stored is not None
    text = repr(stored)
    for plain in (created["secret"], "header-value-123", "password-456"):
        assert plain not in text


async def test_only_the_owner_sees_or_changes_endpoints(team: list[Owner], receiver: Receiver) -> None:
    owner, member, outsider = team
    agent = await owner.create_agent()
    added = await owner.human.post(f"/api/v1/agents/{agent['id']}/members", json={"email": member.email})
    assert added.status_code in (200, 201), added.text
    created = await add_endpoint(owner, agent["id"], url=receiver.url("/mine"))
    base = f"/api/v1/agents/{agent['id']}/endpoints"
    one = f"{base}/{created['id']}"
    for who in (member.human, member.agent, outsider.human, outsider.agent):
        assert (await who.get(base)).status_code == 404
        assert (await who.get(one)).status_code == 404
        assert (await who.post(base, json={"url": receiver.url("/theirs")})).status_code == 404
        assert (await who.patch(one, json={"disabled": True})).status_code == 404
        assert (await who.post(f"{one}/secret/rotate")).status_code == 404
        assert (await who.delete(one)).status_code == 404
        # An account-wide endpoint is addressed by its owner only, too.
        assert (await who.get(f"/api/v1/endpoints/{created['id']}")).status_code == 404
    assert (await owner.agent.get(one)).json()["disabled"] is False


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"url": "http://x/", "filter": {"$or": [{"message.metadata.amount": {"$gt": []}}]}},
            422,
            "filter.$or.0.message.metadata.amount.$gt",
        ),
        (
            {"url": "http://x/", "filter": {"message.text": {"$regex": "("}}},
            422,
            "filter.message.text.$regex",
        ),
        ({"url": "http://x/", "filter": {"$where": "1"}}, 422, "filter.$where"),
        ({"url": "http://x/", "eventTypes": ["review:nope"]}, 422, "eventTypes[0]"),
        ({"url": "http://x/", "eventTypes": ["review:*", "nope:*"]}, 422, "eventTypes[1]"),
        ({"url": "http://x/", "eventTypes": ["*"]}, 422, "eventTypes[0]"),
        ({"url": "http://x/", "eventTypes": ["delivery.status"]}, 422, "eventTypes[0]"),
        ({"url": "http://x/", "eventTypes": ["delivery:*", "agent:status", "review:voted"]}, 201, None),
        ({"url": "http://x/", "eventTypes": []}, 422, "eventTypes"),
        ({"url": "http://x/", "format": "xml"}, 422, "format"),
        ({"url": "http://x/", "rateLimit": 0}, 422, "rateLimit"),
        ({"url": "http://x/", "rateLimit": 1001}, 422, "rateLimit"),
        ({"url": "http://x/", "headers": {f"X-{i}": "v" for i in range(21)}}, 422, "headers"),
        ({"url": "http://x/", "headers": {"webhook-signature": "forged"}}, 422, "headers"),
        ({"url": "http://x/", "description": "d" * 501}, 422, "description"),
        ({"url": "http://x/", "colour": "red"}, 422, "colour"),
        ({"url": "ftp://x/"}, 422, "url"),
        ({"url": "http://10.1.2.3/hook"}, 422, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, 422, "url"),
        ({"url": "http://[::1]:8080/hook"}, 422, "url"),
        # A host the IDNA codec refuses before any lookup (a label over 63 characters, an empty one).
        ({"url": f"https://{'a' * 64}.com/hook"}, 422, "url"),
        ({"url": "https://a..b.com/hook"}, 422, "url"),
        ({"url": "http://nothing.invalid/hook"}, 201, None),
    ],
)
async def test_bad_endpoints_get_a_4xx_naming_the_field(
    refused: Owner, body: dict[str, Any], status: int, field: str | None
) -> None:
    agent = await refused.create_agent()
    resp = await refused.agent.post(f"/api/v1/agents/{agent['id']}/endpoints", json=body)
    if field is None:
        # A name that does not resolve is left to the dispatcher's guard at send time.
        assert resp.status_code == 201, resp.text
        assert resp.json()["eventTypes"] == body.get("eventTypes", ["review:responded", "review:expired"])
        return
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["field"] == field, resp.text


async def test_any_filter_that_compiles_is_stored_as_given(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent()
    # Keys a BSON field name cannot always hold (dots, a leading $) round-trip unchanged.
    spec = {"message.metadata.a.b": 1, "$or": [{"message.text": {"$regex": "^x", "$options": "i"}}]}
    created = await add_endpoint(owner, agent["id"], url=receiver.url("/f"), filter=spec)
    assert created["filter"] == spec
    shown = await owner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{created['id']}")
    assert shown.json()["filter"] == spec


async def test_deleting_a_channel_deletes_its_endpoints_not_the_accounts(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    mine = await add_endpoint(owner, agent["id"], url=receiver.url("/mine"))
    account = await add_endpoint(owner, None, url=receiver.url("/everything"), eventTypes=["message:created"])
    try:
        assert (await owner.agent.delete(f"/api/v1/agents/{agent['id']}")).status_code == 200
        client: AsyncMongoClient[dict[str, Any]] = stack.mongo()
        try:
            left = (
                await client[stack.mongo_db]["endpoints"]
                .find({"_id": {"$in": [mine["id"], account["id"]]}})
                .to_list()
            )
        finally:
            await client.close()
        assert [d["_id"] for d in left] == [account["id"]]
    finally:
        await owner.agent.delete(f"/api/v1/endpoints/{account['id']}")


async def test_endpoints_per_channel_are_bounded(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent()
    base = f"/api/v1/agents/{agent['id']}/endpoints"
    made = await asyncio.gather(
        *(owner.agent.post(base, json={"url": receiver.url(f"/n{i}")}) for i in range(20))
    )
    assert all(r.status_code == 201 for r in made)
    over = await owner.agent.post(base, json={"url": receiver.url("/n20")})
    assert over.status_code == 409, over.text
    assert over.json()["error"]["code"] == "too_many_endpoints"
    # Another channel of the same owner has its own budget.
    other = await owner.create_agent()
    await add_endpoint(owner, other["id"], url=receiver.url("/other"))


# --- delivery ---------------------------------------------------------------------------------


async def test_one_event_goes_to_the_agent_url_and_each_matching_endpoint(
    owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/agent"))
    plain = await add_endpoint(owner, agent["id"], url=receiver.url("/plain"))
    prod = await add_endpoint(
        owner,
        agent["id"],
        url=receiver.url("/prod"),
        filter={"message.metadata.env": "prod"},
        format="standard",
    )
    await add_endpoint(
        owner, agent["id"], url=receiver.url("/staging"), filter={"message.metadata.env": "staging"}
    )
    created_only = await add_endpoint(
        owner, agent["id"], url=receiver.url("/created-only"), eventTypes=["message:created"]
    )
    await add_endpoint(owner, agent["id"], url=receiver.url("/off"), disabled=True)
    # Same URL as the agent's: still a delivery of its own (its own secret and id in the list).
    same = await add_endpoint(owner, agent["id"], url=receiver.url("/agent"))

    msg = await answered(owner, agent["id"], metadata={"env": "prod"})
    found = await all_deliveries(owner, msg["id"], 5)
    by_endpoint = {d["endpointId"]: d for d in found}
    assert set(by_endpoint) == {None, plain["id"], prod["id"], same["id"], created_only["id"]}
    assert by_endpoint[None]["source"] == "agent"
    assert {d["source"] for d in found if d["endpointId"]} == {"endpoint"}
    assert by_endpoint[created_only["id"]]["eventType"] == "message.created"
    responded = [d for d in found if d["eventType"] == "review.responded"]
    event_id = by_endpoint[None]["eventId"]
    assert {d["eventId"] for d in responded} == {event_id}

    [to_agent, to_same] = await receiver.wait_for("/agent", 2)
    [to_plain] = receiver.at("/plain")
    [to_prod] = receiver.at("/prod")
    # Each is signed with its own secret only, all under the event's one webhook-id.
    signed = {"/plain": (to_plain, plain["secret"]), "/prod": (to_prod, prod["secret"])}
    for got, secret in signed.values():
        assert got.headers["webhook-id"] == event_id
        Webhook(secret).verify(got.body, got.headers)
        with pytest.raises(Exception):  # noqa: B017,PT011 - any verification failure
            Webhook(agent["webhookSecret"]).verify(got.body, got.headers)
    verified = []
    for got in (to_agent, to_same):
        for secret in (agent["webhookSecret"], same["secret"]):
            try:
                Webhook(secret).verify(got.body, got.headers)
                verified.append(secret)
            except Exception:  # noqa: S112 - trying which secret signed it
                continue
    assert sorted(verified) == sorted([agent["webhookSecret"], same["secret"]])
    assert to_plain.json()["event"] == "review:responded"
    standard = to_prod.json()
    assert (standard["type"], standard["data"]["message_id"]) == ("review.responded", msg["id"])
    assert standard["data"]["event"] == "review:responded"
    await asyncio.sleep(0.5)  # what else might still arrive, for the negative checks below
    assert receiver.at("/staging") == []
    assert receiver.at("/off") == []
    # message:created of the agent's own message went to the endpoint that asked for it only.
    [created] = receiver.at("/created-only")
    assert created.json()["event"] == "message:created"
    assert created.json()["message_id"] == msg["id"]


async def test_account_endpoints_get_every_channel_of_their_owner_only(
    team: list[Owner], receiver: Receiver
) -> None:
    owner, _, outsider = team
    account = await add_endpoint(
        owner, None, url=receiver.url("/account"), filter={"channelId": {"$exists": True}}
    )
    try:
        first, second = await owner.create_agent(), await owner.create_agent()
        theirs = await outsider.create_agent()
        one = await answered(owner, first["id"])
        two = await answered(owner, second["id"])
        await answered(outsider, theirs["id"])
        got = await receiver.wait_for("/account", 2)
        assert sorted(r.json()["message_id"] for r in got) == sorted([one["id"], two["id"]])
        for r in got:
            Webhook(account["secret"]).verify(r.body, r.headers)
        [listed] = (await owner.agent.get(f"/api/v1/endpoints/{account['id']}/deliveries")).json()["data"][:1]
        assert listed["endpointId"] == account["id"]
        await asyncio.sleep(0.5)
        assert len(receiver.at("/account")) == 2
    finally:
        await owner.agent.delete(f"/api/v1/endpoints/{account['id']}")


async def test_a_failing_endpoint_retries_alone_with_the_same_webhook_id(
    owner: Owner, receiver: Receiver
) -> None:
    receiver.routes["/flaky"] = sequence(answer(500), answer(503), answer(200))
    agent = await owner.create_agent(webhookUrl=receiver.url("/healthy"), webhookRetrySchedule=[1, 1, 1])
    flaky = await add_endpoint(owner, agent["id"], url=receiver.url("/flaky"))
    msg = await answered(owner, agent["id"])
    found = await all_deliveries(owner, msg["id"], 2)
    mine = next(d for d in found if d["endpointId"] == flaky["id"])
    healthy = next(d for d in found if d["endpointId"] is None)
    assert [a["statusCode"] for a in mine["attempts"]] == [500, 503, 200]
    assert [a["statusCode"] for a in healthy["attempts"]] == [200]
    attempts = receiver.at("/flaky")
    assert {r.headers["webhook-id"] for r in attempts} == {mine["eventId"]}
    assert len({r.body for r in attempts}) == 1

    # The message's deliveryStatus is its agent's webhook's, as before endpoints existed.
    async def mirrored() -> bool:
        shown: dict[str, Any] = (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()
        return bool(shown.get("deliveryStatus") == "webhook_delivered")

    await eventually(mirrored, 10.0, "the agent webhook's status on the message")


async def test_410_disables_the_endpoint_and_nothing_more_goes_there(
    owner: Owner, receiver: Receiver
) -> None:
    receiver.routes["/gone"] = answer(410)
    agent = await owner.create_agent()
    gone = await add_endpoint(owner, agent["id"], url=receiver.url("/gone"))
    keep = await add_endpoint(owner, agent["id"], url=receiver.url("/kept"))
    first = await answered(owner, agent["id"])
    await receiver.wait_for("/gone", 1)

    async def disabled() -> dict[str, Any] | None:
        shown: dict[str, Any] = (
            await owner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{gone['id']}")
        ).json()
        return shown if shown["disabled"] else None

    shown = await eventually(disabled, 10.0, "endpoint disabled after 410")
    assert "410" in shown["disabledReason"]

    # The endpoint is disabled before the outcome is recorded: wait for the outcome too.
    async def failed() -> dict[str, Any] | None:
        found = {d["endpointId"]: d for d in await deliveries(owner, first["id"])}
        return found[gone["id"]] if found[gone["id"]]["state"] == "failed" else None

    assert (await eventually(failed, 10.0, "the 410 delivery failed"))["attemptCount"] == 1
    second = await answered(owner, agent["id"])
    await receiver.wait_for("/kept", 2)
    assert [d["endpointId"] for d in await deliveries(owner, second["id"])] == [keep["id"]]
    assert len(receiver.at("/gone")) == 1


async def test_the_message_url_keeps_its_priority_beside_endpoints(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/default"))
    extra = await add_endpoint(owner, agent["id"], url=receiver.url("/extra"))
    msg = await answered(owner, agent["id"], webhookUrl=receiver.url("/override"))
    found = await all_deliveries(owner, msg["id"], 2)
    assert sorted((d["source"], d["endpointId"] or "") for d in found) == [
        ("endpoint", extra["id"]),
        ("message", ""),
    ]
    await receiver.wait_for("/override", 1)
    await receiver.wait_for("/extra", 1)
    assert receiver.at("/default") == []


def busiest_second(requests: list[Received]) -> int:
    """The most requests that arrived within any one second."""
    times = sorted(r.at for r in requests)
    return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)


async def test_an_endpoint_rate_limit_spreads_its_deliveries(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent()
    limited = await add_endpoint(owner, agent["id"], url=receiver.url("/limited"), rateLimit=1)
    await add_endpoint(owner, agent["id"], url=receiver.url("/free"))
    msgs = [await owner.post_message(agent["id"], review=APPROVAL) for _ in range(6)]
    answers = await asyncio.gather(*(owner.respond(m["id"], {"selectedOption": "ok"}) for m in msgs))
    assert all(r.status_code == 200 for r in answers)
    await receiver.wait_for("/free", 6)
    got = await receiver.wait_for("/limited", 6, timeout=30.0)
    # One a second: any one-second span holds at most three (the send windows are whole
    # seconds of the dispatcher's clock, the arrivals are not). Unlimited, all six arrive at once.
    assert busiest_second(got) <= 3, [round(r.at - got[0].at, 3) for r in got]
    found = [d for m in msgs for d in await deliveries(owner, m["id"]) if d["endpointId"] == limited["id"]]
    # Held back is not an attempt: each went once, on its first try.
    assert sorted(d["attemptCount"] for d in found) == [1] * 6
    assert len({r.headers["webhook-id"] for r in got}) == 6
    assert all(b.at >= a.at for a, b in itertools.pairwise(got))
