"""``@sayso.require_approval`` on sync and async functions: approved, denied, expired."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sayso
from sayso.approval import call_arguments, describe_call, rebind, signature_schema
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack


@pytest.fixture
async def channel(stack: RunningStack, owner: Owner) -> str:
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        agent = await client.create_agent("gatekeeper")
    return agent.id


async def test_sync_function_runs_only_when_approved(stack: RunningStack, owner: Owner, channel: str) -> None:
    ran: list[tuple[str, int]] = []
    client = sayso.Client(stack.url, owner.api_key)

    @sayso.require_approval(channel=channel, client=client)
    def deploy(version: str, replicas: int = 3) -> str:
        ran.append((version, replicas))
        return f"deployed {version}"

    try:
        call = asyncio.create_task(asyncio.to_thread(deploy, "2.1"))
        answered = await answer_next(owner, channel, {"selectedOption": "approve"})
        assert await asyncio.wait_for(call, 30) == "deployed 2.1"
        assert ran == [("2.1", 3)]
        # The reviewer saw the function and its arguments.
        assert "deploy(version='2.1', replicas=3)" in answered["text"]
        assert answered["metadata"]["arguments"] == {"version": "'2.1'", "replicas": "3"}

        call = asyncio.create_task(asyncio.to_thread(deploy, "6.6", replicas=66))
        await answer_next(owner, channel, {"selectedOption": "reject", "comment": "not on a Friday"})
        with pytest.raises(sayso.Denied) as denied:
            await asyncio.wait_for(call, 30)
        assert denied.value.comment == "not on a Friday"
        assert not denied.value.expired
        assert ran == [("2.1", 3)]  # the rejected call never ran
    finally:
        client.close()


async def test_async_function_runs_only_when_approved(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    ran: list[str] = []
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:

        @sayso.require_approval(channel=channel, client=client, text="Delete the **users** table?")
        async def drop(table: str, *, cascade: bool = False) -> str:
            ran.append(table)
            return "dropped"

        answer = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "approve"}))
        assert await asyncio.wait_for(drop("users", cascade=True), 30) == "dropped"
        answered = await answer
        assert answered["text"].startswith("Delete the **users** table?")
        assert "drop(table='users', cascade=True)" in answered["text"]

        answer = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "reject"}))
        with pytest.raises(sayso.Denied) as denied:
            await asyncio.wait_for(drop("orders"), 30)
        await answer
        assert denied.value.comment is None
        assert denied.value.answer is not None
        assert denied.value.answer.response == {"selectedOption": "reject"}
        assert ran == ["users"]


async def test_expiry_is_the_callers_choice(stack: RunningStack, owner: Owner, channel: str) -> None:
    ran: list[str] = []
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:

        @sayso.require_approval(channel=channel, client=client, expires_in=1)
        async def strict() -> None:
            ran.append("strict")

        @sayso.require_approval(channel=channel, client=client, expires_in=1, on_expire="allow")
        async def lenient() -> None:
            ran.append("lenient")

        with pytest.raises(sayso.Denied) as denied:
            await asyncio.wait_for(strict(), 30)
        assert denied.value.expired
        await asyncio.wait_for(lenient(), 30)
    assert ran == ["lenient"]

    with sayso.Client(stack.url, owner.api_key) as sync_client:

        @sayso.require_approval(channel=channel, client=sync_client, expires_in=1)
        def sync_strict() -> None:
            ran.append("sync")

        with pytest.raises(sayso.Denied):
            await asyncio.wait_for(asyncio.to_thread(sync_strict), 30)
    assert ran == ["lenient"]


async def test_client_from_the_environment(
    stack: RunningStack, owner: Owner, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAYSO_URL", stack.url)
    monkeypatch.setenv("SAYSO_API_KEY", owner.api_key)
    monkeypatch.setenv("SAYSO_DEFAULT_CHANNEL", channel)
    approve = {"ok"}

    @sayso.require_approval(options=[sayso.Option(id="ok", label="OK")], approve=approve)
    async def task() -> int:
        return 7

    answer = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "ok"}))
    assert await asyncio.wait_for(task(), 30) == 7
    await answer


def test_wrong_client_kind_is_refused_at_decoration() -> None:
    async def coroutine() -> None: ...

    def plain() -> None: ...

    with sayso.Client("http://127.0.0.1:9", "hp_x") as sync_client, pytest.raises(TypeError):
        sayso.require_approval(channel="c", client=sync_client)(coroutine)
    with pytest.raises(ValueError, match="on_expire"):
        sayso.require_approval(channel="c", on_expire="maybe")(plain)  # type: ignore[arg-type]


def test_describe_call_shows_what_the_function_receives() -> None:
    def f(a: int, /, b: str = "x", *rest: Any, flag: bool = False, **extra: Any) -> None: ...

    text, named = describe_call(f, (1, "y", 2, 3), {"flag": True, "note": "hi"})
    assert text == "f(1, b='y', 2, 3, flag=True, note='hi')"
    assert named == {"a": "1", "b": "'y'", "*rest": "(2, 3)", "flag": "True", "note": "'hi'"}
    long_text, _ = describe_call(f, ("z" * 5000,), {})
    assert len(long_text) < 2100


async def test_an_editable_call_runs_with_the_reviewers_arguments(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    """Edit before approve (#32): the review offers the call's arguments with a schema drawn from
    the signature; an approval with editedArgs runs the function with them, one without runs it
    as called."""
    ran: list[tuple[str, float, str]] = []
    client = sayso.Client(stack.url, owner.api_key)

    @sayso.require_approval(channel=channel, client=client, editable=True)
    def transfer(to: str, amount: float, memo: str = "") -> str:
        ran.append((to, amount, memo))
        return f"sent {amount} to {to}"

    try:
        call = asyncio.create_task(asyncio.to_thread(transfer, "alice", 120))
        edited = {"to": "alice", "amount": 90.5, "memo": "first half"}
        answered = await answer_next(owner, channel, {"selectedOption": "approve", "editedArgs": edited})
        assert await asyncio.wait_for(call, 30) == "sent 90.5 to alice"
        assert ran == [("alice", 90.5, "first half")]
        edit = answered["review"]["payload"]["edit"]
        assert edit["args"] == {"to": "alice", "amount": 120, "memo": ""}
        assert edit["schema"] == {
            "type": "object",
            "properties": {
                "to": {"type": "string"},
                "amount": {"type": "number"},
                "memo": {"type": "string"},
            },
            "additionalProperties": False,
            "required": ["to", "amount"],
        }
        # The digest binds the call as proposed (the payload with its edit), not the edited one.
        assert answered["review"]["actionDigest"] == sayso.action_digest(
            answered["review"]["payload"], answered["metadata"]
        )
        call = asyncio.create_task(asyncio.to_thread(transfer, "bob", 5))
        await answer_next(owner, channel, {"selectedOption": "approve"})
        assert await asyncio.wait_for(call, 30) == "sent 5 to bob"
        assert ran[-1] == ("bob", 5, "")
    finally:
        client.close()


async def test_an_async_editable_call_with_its_own_schema(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    ran: list[dict[str, Any]] = []
    schema = {
        "type": "object",
        "properties": {"replicas": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["replicas"],
    }
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:

        @sayso.require_approval(channel=channel, client=client, editable=True, schema=schema)
        async def scale(**settings: Any) -> str:
            ran.append(settings)
            return "scaled"

        answer = asyncio.create_task(
            answer_next(
                owner, channel, {"selectedOption": "approve", "editedArgs": {"replicas": 4, "zone": "b"}}
            )
        )
        assert await asyncio.wait_for(scale(replicas=8), 30) == "scaled"
        answered = await answer
        assert answered["review"]["payload"]["edit"] == {"args": {"replicas": 8}, "schema": schema}
        assert ran == [{"replicas": 4, "zone": "b"}]


async def test_an_edited_approval_of_another_digest_never_runs(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    """The digest check comes first: edited arguments on a review whose digest was changed
    between asking and answering do not run the function."""
    ran: list[str] = []
    client = sayso.Client(stack.url, owner.api_key)

    @sayso.require_approval(channel=channel, client=client, editable=True)
    def transfer(account: str, amount: int) -> str:
        ran.append(account)
        return "sent"

    mongo = stack.mongo()
    try:
        call = asyncio.create_task(asyncio.to_thread(transfer, "mallory", 1_000_000))
        review = await pending_review(owner, channel)
        changed = await mongo[stack.mongo_db].messages.update_one(
            {"_id": review["id"]}, {"$set": {"review.action_digest": "0" * 64}}
        )
        assert changed.modified_count == 1
        edited = {"account": "mallory", "amount": 10}
        answered = await owner.respond(review["id"], {"selectedOption": "approve", "editedArgs": edited})
        assert answered.status_code == 200, answered.text
        with pytest.raises(sayso.DigestMismatch):
            await asyncio.wait_for(call, 30)
    finally:
        await mongo.close()
        client.close()
    assert ran == []


def test_editable_arguments_units() -> None:
    def f(a: int, /, b: str, *, c: bool = False, **rest: Any) -> None: ...

    assert call_arguments(f, [1, "x"], {"d": [1]}) == {"a": 1, "b": "x", "c": False, "d": [1]}
    assert rebind(f, {"a": 2, "b": "y", "c": True, "e": None}) == ([2], {"b": "y", "c": True, "e": None})
    assert signature_schema(f) == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        "additionalProperties": True,
        "required": ["a", "b"],
    }

    def g(x: int, y: int | None = None, z: float = 1) -> None: ...

    assert signature_schema(g)["properties"] == {"x": {"type": "integer"}, "y": {}, "z": {"type": "number"}}
    with pytest.raises(TypeError, match="no parameter 'w'"):
        rebind(g, {"x": 1, "w": 2})
    with pytest.raises(TypeError):
        rebind(g, {"y": 1})  # x is required
    with pytest.raises(TypeError, match="not a JSON value"):
        call_arguments(g, [object()], {})
    with pytest.raises(TypeError, match=r"\*args"):
        sayso.require_approval(channel="c", editable=True)(lambda *xs: None)
    with pytest.raises(ValueError, match="editable=True"):
        sayso.require_approval(channel="c", schema={})(g)
