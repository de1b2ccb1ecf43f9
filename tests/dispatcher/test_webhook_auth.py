"""Basic auth on webhooks (Placet's ``webhookAuth``): which requests carry it, that every attempt
does, that it is read from the agent at send time, and that the password exists only sealed —
never in clear in MongoDB, in a delivery or in a log line."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiohttp import web

from sayso_common.documents import AgentDoc
from sayso_common.events import MessageData, ReviewResponded
from sayso_common.views import CallbackView, MessageView, ReviewView
from sayso_dispatcher.agents import basic_auth_header
from sayso_dispatcher.targets import target_for
from tests.dispatcher.flows import answer, answered, deliveries, sequence, settled
from tests.support.receiver import Handler, Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ({"username": "bot", "password": "pw"}, {"Authorization": "Basic Ym90OnB3"}),
        # RFC 7617: user-id and password as UTF-8; a colon is fine in the password.
        ({"username": "Zoë", "password": "pä:ss"}, {"Authorization": _basic("Zoë", "pä:ss")}),
        ({"username": "bot", "password": " "}, {"Authorization": _basic("bot", " ")}),
        # As Placet: only when both are non-empty.
        ({"username": "bot", "password": ""}, {}),
        ({"username": "", "password": "pw"}, {}),
        ({"username": "bot"}, {}),
        ({"password": "pw"}, {}),
        ({"username": "bot", "password": None}, {}),
        ({"username": 7, "password": "pw"}, {}),
        ({}, {}),
        (["bot", "pw"], {}),
        ("bot:pw", {}),
        (None, {}),
    ],
)
def test_basic_auth_header(pair: object, expected: dict[str, str]) -> None:
    assert basic_auth_header(pair) == expected


AGENT = {
    "webhook_url": "https://agent.example/hook",
    "webhook_enabled": True,
    "webhook_headers_enc": "sealed-agent-headers",
}


def _event(webhook_url: str | None, callback: bool = True) -> ReviewResponded:
    review = ReviewView(
        type="approval",
        status="completed",
        response={"selectedOption": "ok"},
        callback=CallbackView(url="https://cb.example/hook", method="PUT") if callback else None,
    )
    message = MessageView(
        id="msg_1",
        channel_id="agt_1",
        webhook_url=webhook_url,
        review=review,
        created_at=datetime(2026, 4, 1, tzinfo=UTC),
    )
    return ReviewResponded(channel_id="agt_1", owner_id="u", data=MessageData(message=message))


@pytest.mark.parametrize(
    ("message_url", "agent", "source", "headers_enc"),
    [
        # As Placet: a message's own URL still gets the agent's headers (and auth, at send time)...
        ("https://msg.example/h", AGENT, "message", "sealed-agent-headers"),
        ("https://msg.example/h", {**AGENT, "webhook_enabled": False}, "message", "sealed-agent-headers"),
        ("https://msg.example/h", None, "message", None),
        (None, AGENT, "agent", "sealed-agent-headers"),
        # ...the legacy callback only its own.
        (None, {**AGENT, "webhook_url": None}, "callback", "sealed-callback-headers"),
    ],
)
def test_which_targets_carry_the_agents_headers(
    message_url: str | None, agent: dict[str, Any] | None, source: str, headers_enc: str | None
) -> None:
    target = target_for(_event(message_url), cast("AgentDoc | None", agent), "sealed-callback-headers")
    assert target is not None
    assert (target.source, target.headers_enc) == (source, headers_enc)


def _authorizations(seen: list[list[str]], then: Handler) -> Handler:
    """Record every ``Authorization`` header line of each request (a dict would merge two)."""

    async def handler(request: web.Request, got: Received) -> web.StreamResponse:
        seen.append(request.headers.getall("Authorization", []))
        return await then(request, got)

    return handler


async def _no_clear_secrets(stack: RunningStack, owner: Owner, *secrets: str) -> None:
    """Nothing the owner has in MongoDB, and no service log line, holds a secret in clear."""
    mongo = stack.mongo()
    try:
        db = mongo.sayso
        scope = {"$or": [{"owner_id": owner.user_id}, {"user_id": owner.user_id}]}
        seen = 0
        for name in await db.list_collection_names():
            if name.startswith("blobs."):
                continue
            async for doc in db[name].find(scope):
                seen += 1
                text = json.dumps(doc, default=str)
                for secret in secrets:
                    assert secret not in text, f"{secret!r} in clear in {name} {doc['_id']}"
        assert seen >= 3  # the agent, its messages, its deliveries at least
    finally:
        await mongo.close()
    for name in ("api", "dispatcher"):
        log = await asyncio.to_thread(stack.procs[name].log_path.read_text, errors="replace")
        for secret in secrets:
            assert secret not in log, f"{secret!r} in the {name} log"


async def test_every_attempt_carries_the_credentials_of_that_moment(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    seen: list[list[str]] = []
    receiver.routes["/flaky"] = _authorizations(seen, sequence(answer(503), answer(503), answer(200)))
    agent = await owner.create_agent(
        webhookUrl=receiver.url("/flaky"),
        webhookAuth={"username": "bot", "password": "first-Pa55"},
        webhookRetrySchedule=[2, 2],
    )
    msg = await answered(owner, agent["id"])
    await receiver.wait_for("/flaky")
    # Read from the agent at send time: a changed password applies to the pending retries...
    changed = await owner.agent.patch(
        f"/api/v1/agents/{agent['id']}", json={"webhookAuth": {"username": "bot", "password": "second-Pa55"}}
    )
    assert changed.status_code == 200, changed.text
    await receiver.wait_for("/flaky", count=2)
    # ...and so does its removal.
    removed = await owner.agent.patch(f"/api/v1/agents/{agent['id']}", json={"webhookAuth": None})
    assert removed.status_code == 200, removed.text
    assert removed.json()["webhookAuth"] is None
    await settled(owner, msg["id"], "delivered")
    assert seen == [[_basic("bot", "first-Pa55")], [_basic("bot", "second-Pa55")], []]
    # The retries are the same delivery, signed the same way.
    assert len({r.headers["webhook-id"] for r in receiver.at("/flaky")}) == 1
    await _no_clear_secrets(
        stack,
        owner,
        "first-Pa55",
        "second-Pa55",
        _basic("bot", "first-Pa55").split()[1],
        _basic("bot", "second-Pa55").split()[1],
    )


async def test_which_requests_carry_basic_auth(owner: Owner, receiver: Receiver) -> None:
    auth = {"username": "bot", "password": "hunter2-xyz"}
    expected = _basic("bot", "hunter2-xyz")
    agent = await owner.create_agent(
        webhookUrl=receiver.url("/default"), webhookHeaders={"X-Team": "blue"}, webhookAuth=auth
    )
    await answered(owner, agent["id"])
    (default,) = await receiver.wait_for("/default")
    assert default.headers["authorization"] == expected
    # A message's own URL: the agent's auth and headers too, as in Placet.
    await answered(owner, agent["id"], webhookUrl=receiver.url("/own"))
    (own,) = await receiver.wait_for("/own")
    assert (own.headers["authorization"], own.headers["x-team"]) == (expected, "blue")
    # The test button.
    test = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")
    assert test.status_code == 200, test.text
    assert receiver.at("/default")[-1].headers["authorization"] == expected
    # A legacy callback is someone else's URL: its own headers only, never the agent's secrets.
    bare = await owner.create_agent(webhookAuth=auth, webhookHeaders={"X-Team": "red"})
    callback = {"url": receiver.url("/cb"), "headers": {"X-Callback": "yes"}}
    await answered(owner, bare["id"], review={"callback": callback})
    (cb,) = await receiver.wait_for("/cb")
    assert cb.headers["x-callback"] == "yes"
    assert "authorization" not in cb.headers
    assert "x-team" not in cb.headers


async def test_a_custom_authorization_header_wins(owner: Owner, receiver: Receiver) -> None:
    seen: list[list[str]] = []
    receiver.routes["/custom"] = _authorizations(seen, answer(200))
    receiver.routes["/empty"] = _authorizations(seen, answer(200))
    custom = await owner.create_agent(
        webhookUrl=receiver.url("/custom"),
        webhookHeaders={"authorization": "Bearer tok-123"},  # any case: never two headers
        webhookAuth={"username": "bot", "password": "pw-1"},
    )
    await answered(owner, custom["id"])
    await receiver.wait_for("/custom")
    # As Placet: an empty password sends no credentials at all.
    empty = await owner.create_agent(
        webhookUrl=receiver.url("/empty"), webhookAuth={"username": "bot", "password": ""}
    )
    await answered(owner, empty["id"])
    await receiver.wait_for("/empty")
    assert seen == [["Bearer tok-123"], []]


async def test_credentials_no_key_opens_fail_the_attempt_rather_than_go_without(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(
        webhookUrl=receiver.url("/locked"),
        webhookAuth={"username": "bot", "password": "pw-lost"},
        webhookRetrySchedule=[2, 2],
    )
    mongo = stack.mongo()
    try:
        # Sealed under a key the services no longer have (an operator dropped it too early).
        await mongo.sayso.agents.update_one(
            {"_id": agent["id"]}, {"$set": {"webhook_auth_enc": "gAAAAABsealed-under-a-lost-key"}}
        )
    finally:
        await mongo.close()

    async def first_attempt() -> dict[str, Any] | None:
        found = await deliveries(owner, msg["id"])
        return found[0]["attempts"][0] if found and found[0]["attempts"] else None

    msg = await answered(owner, agent["id"])
    attempt = await eventually(first_attempt, 20, "first attempt recorded")
    assert attempt["errorKind"] == "internal_error"
    assert "webhookAuth cannot be opened" in attempt["error"]
    assert not receiver.at("/locked")  # nothing went out without the credentials
    # The owner sets the credentials again: the retry that is due goes out with them.
    fixed = await owner.agent.patch(
        f"/api/v1/agents/{agent['id']}", json={"webhookAuth": {"username": "bot", "password": "pw-new"}}
    )
    assert fixed.status_code == 200, fixed.text
    delivered = await settled(owner, msg["id"], "delivered")
    assert receiver.at("/locked")[-1].headers["authorization"] == _basic("bot", "pw-new")
    assert delivered["attemptCount"] >= 2
