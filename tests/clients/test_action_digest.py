"""``actionDigest``: the server's function and the SDK's twin give the same digest, of exactly the
documented canonical JSON; ``require_approval`` refuses to run a function whose answered review
carries another digest."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

import sayso
from sayso_common.action_digest import action_digest as server_digest
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack


def sha(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# (payload, metadata, the canonical JSON both must hash)
TABLE: list[tuple[Any, Any, str]] = [
    ({}, None, '{"args":null,"payload":{},"tool":null}'),
    (None, {}, '{"args":null,"payload":{},"tool":null}'),
    ({}, {"text": "other metadata is not part of it"}, '{"args":null,"payload":{},"tool":null}'),
    ({}, {"tool": "deploy"}, '{"args":null,"payload":{},"tool":"deploy"}'),
    ({}, {"args": {"env": "prod"}}, '{"args":{"env":"prod"},"payload":{},"tool":null}'),
    ({}, {"tool": None, "args": None}, '{"args":null,"payload":{},"tool":null}'),
    # Key order, at every level, does not matter.
    (
        {"b": 1, "a": {"z": [3, {"y": 2, "x": 1}], "c": True}},
        {"args": {"version": "2.1", "amount": 12.5}, "tool": "deploy"},
        '{"args":{"amount":12.5,"version":"2.1"},"payload":{"a":{"c":true,"z":[3,{"x":1,"y":2}]},"b":1},'
        '"tool":"deploy"}',
    ),
    (
        {"a": {"c": True, "z": [3, {"x": 1, "y": 2}]}, "b": 1},
        {"tool": "deploy", "args": {"amount": 12.5, "version": "2.1"}},
        '{"args":{"amount":12.5,"version":"2.1"},"payload":{"a":{"c":true,"z":[3,{"x":1,"y":2}]},"b":1},'
        '"tool":"deploy"}',
    ),
    # Non-ASCII is UTF-8 as itself, not \\u escapes; list order does matter.
    (
        {"options": [{"id": "oui", "label": "Déployer 🚀"}, {"id": "non", "label": "拒绝"}]},
        {"tool": "überweisen", "args": ["€100", None, False]},
        '{"args":["€100",null,false],"payload":{"options":[{"id":"oui","label":"Déployer 🚀"},'
        '{"id":"non","label":"拒绝"}]},"tool":"überweisen"}',
    ),
    (
        {"s": 'quote " and \\ backslash\n'},
        None,
        '{"args":null,"payload":{"s":"quote \\" and \\\\ backslash\\n"},"tool":null}',
    ),
]


@pytest.mark.parametrize(("payload", "metadata", "canonical"), TABLE)
def test_server_and_sdk_digests_agree(payload: Any, metadata: Any, canonical: str) -> None:
    expected = sha(canonical)
    assert server_digest(payload, metadata) == expected
    assert sayso.action_digest(payload, metadata) == expected


def test_a_different_action_has_a_different_digest() -> None:
    base = sayso.action_digest({}, {"tool": "deploy", "args": {"env": "staging"}})
    assert sayso.action_digest({}, {"tool": "deploy", "args": {"env": "production"}}) != base
    assert sayso.action_digest({}, {"tool": "destroy", "args": {"env": "staging"}}) != base
    assert sayso.action_digest({"x": 1}, {"tool": "deploy", "args": {"env": "staging"}}) != base


@pytest.fixture
async def channel(stack: RunningStack, owner: Owner) -> str:
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        agent = await client.create_agent("bound")
    return agent.id


async def test_require_approval_binds_the_call_to_its_digest(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    ran: list[str] = []
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:

        @sayso.require_approval(channel=channel, client=client)
        async def transfer(account: str, amount: int) -> str:
            ran.append(account)
            return "sent"

        answer = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "approve"}))
        assert await asyncio.wait_for(transfer("alice", 10), 30) == "sent"
        answered = await answer
    tool = f"{transfer.__module__}.{transfer.__qualname__}"
    assert answered["metadata"]["tool"] == tool
    assert answered["metadata"]["args"] == {"account": "'alice'", "amount": "10"}
    # The review carries the digest of what was asked: the payload the SDK sent, tool and args.
    sent = sayso.Approval(options=sayso.Approval().options, allow_comment=True).body()["payload"]
    assert answered["review"]["actionDigest"] == sayso.action_digest(sent, answered["metadata"])
    assert ran == ["alice"]


async def test_require_approval_refuses_an_answer_with_another_digest(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    """The stored digest is changed between asking and answering (as if another action had been
    approved): the approval comes back, the function does not run."""
    ran: list[str] = []
    client = sayso.Client(stack.url, owner.api_key)

    @sayso.require_approval(channel=channel, client=client)
    def transfer(account: str, amount: int) -> str:
        ran.append(account)
        return "sent"

    tampered = "0" * 64
    mongo = stack.mongo()
    try:
        call = asyncio.create_task(asyncio.to_thread(transfer, "mallory", 1_000_000))
        review = await pending_review(owner, channel)
        asked = review["review"]["actionDigest"]
        assert len(asked) == 64
        assert asked != tampered
        changed = await mongo[stack.mongo_db].messages.update_one(
            {"_id": review["id"]}, {"$set": {"review.action_digest": tampered}}
        )
        assert changed.modified_count == 1
        answered = await owner.respond(review["id"], {"selectedOption": "approve"})
        assert answered.status_code == 200, answered.text
        with pytest.raises(sayso.DigestMismatch) as refused:
            await asyncio.wait_for(call, 30)
    finally:
        await mongo.close()
        client.close()
    assert ran == []  # approved, but not this call: it never ran
    assert (refused.value.expected, refused.value.answered) == (asked, tampered)
    assert asked in str(refused.value)
    assert tampered in str(refused.value)
    assert refused.value.message_id == review["id"]
