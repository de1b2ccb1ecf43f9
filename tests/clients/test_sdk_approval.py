"""``@sayso.require_approval`` on sync and async functions: approved, denied, expired."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sayso
from sayso.approval import describe_call
from tests.clients.support import answer_next
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
